/*
 * worker.c - the inbox worker thread ("inbox-worker", DESIGN §8).
 *
 * The webhook only commits what arrived; this thread does the rest, from
 * the store, so it survives restarts and outages:
 *
 *   messages  in order per sender (payload timestamp, then arrival): the
 *             contact row (profile name; a user-set alias always wins, the
 *             newer of the local one and the one shared through the kv,
 *             alias.c), the per-sender rate limit (over the limit: stored
 *             and flagged), voice notes handed to the media thread, the
 *             message's text, and an outbox entry for the search index
 *             (src/index) built by document.c (title: the alias).
 *   statuses  applied to wa_outgoing by rank, so a late `delivered` never
 *             overwrites `read` (Meta does not order its webhooks).
 *
 * One round: read up to BATCH_MESSAGES due messages and BATCH_STATUSES due
 * statuses on a read connection, prepare them here (JSON, text), then apply
 * them in ONE store write, each item in its own SAVEPOINT. An item that
 * fails is rolled back alone and stays `pending` with exponential backoff
 * (1 s doubling to 5 min); later messages of the same sender wait behind it
 * (the read query skips a sender whose earlier message is backing off). A
 * write that fails as a whole (disk full, read-only store) changes nothing
 * and the thread backs off the same way. Nothing is ever dropped.
 *
 * Shared state goes through the kv interface (src/kv/kv.h) only:
 *   rate limit  LUCY_RATE_LIMIT as GCRA on key whatsapp:<sender>, judged at
 *               the message's arrival time. A kv whose state is the local
 *               store (LUCY_KV_CAP_IN_STORE: the embedded backend) takes
 *               the step inside the store write, in the item's savepoint:
 *               it commits or rolls back with the item, never counted
 *               twice. Otherwise (Redis) the step runs before the write,
 *               and its decision is remembered per inbox item
 *               (wa_messages.seq) until the item is done, so an item
 *               retried after a failed write reuses it instead of taking
 *               the sender's limit again. Lost only if the process dies in
 *               between (the item is then counted twice).
 *   claims      a shared kv (LUCY_KV_CAP_SHARED) also claims each wamid
 *               for one instance (cross-instance de-duplication) and
 *               receives the profile names.
 *   aliases     the shared user aliases of the batch's senders, read with
 *               one lucy_kv_get_many before the write; a newer one is
 *               copied into the local row (so it survives a kv outage).
 * None of these can cost a message: a kv that does not answer means "not
 * claimed elsewhere", LUCY_RATE_LIMIT_ON_ERROR, and the local alias.
 *
 * Woken by lucy_wa_worker_kick() after every commit, else polls each second.
 * Depends on media.c (voice notes are handed to it) and document.c; only
 * inbox.c and plugin.c call in here.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../kv/kv.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../people/people.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "../../thread.h"
#include "whatsapp.h"

/* Items per round, i.e. per store write. A round holds the store's single
 * writer for its whole apply (webhook acknowledgements queued meanwhile
 * wait), so it is kept to a few milliseconds; 256 doubled the p99 of
 * webhooks arriving while a backlog drains (docs/benchmarks.md). */
#define BATCH_MESSAGES 128
#define BATCH_STATUSES 128
#define RETRY_BASE_MS  1000
#define RETRY_MAX_MS   (5 * 60 * 1000)
#define POLL_MS        1000

struct msg_item {
    sqlite3_int64 seq;                 /* wa_messages.seq */
    char *wamid;                       /* message id */
    char *sender;                      /* contact key */
    char *wa_id;                       /* or NULL */
    char *user_id;                     /* or NULL */
    char *type;                        /* message type */
    char *profile_name;                /* or NULL */
    int known_type;                    /* 1: DESIGN §8 type */
    int64_t timestamp_s;               /* payload time */
    int64_t received_ms;               /* commit time */
    int attempts;                      /* failures so far */
    json_t *raw;                       /* parsed message object */
    char *text;                        /* searchable text */
    int elsewhere;                     /* another lucy instance claimed this wamid (shared kv) */
    int decided;                       /* the rate limit was decided before the write ... */
    int allowed;                       /* ... with this outcome */
    int applied;                       /* the item's savepoint was released (done if committed) */
    struct lucy_wa_alias shared_alias; /* the kv's copy of the user's alias */
    char *shared_alias_buf;            /* owns shared_alias.alias */
};

struct status_item {
    sqlite3_int64 seq; /* wa_statuses.seq */
    char *id;          /* outgoing wamid */
    char *status;      /* sent/delivered/read/... */
    char *recipient;   /* or NULL */
    int64_t timestamp_s;
    int attempts;
    char *errors; /* JSON of statuses[].errors, or NULL */
};

struct batch {
    int64_t now_ms;
    int have_token;     /* WHATSAPP_ACCESS_TOKEN set */
    int rate_count;     /* LUCY_RATE_LIMIT events ... */
    int rate_period_s;  /* ... per this many seconds */
    struct lucy_kv *kv; /* the worker's kv, or NULL */
    int kv_shared;      /* wamid claims and profile names (kv_prepare) */
    int rl_in_write;    /* the kv takes the rate-limit step inside the write */
    int policy_allowed; /* LUCY_RATE_LIMIT_ON_ERROR's answer when there is no kv */
    struct msg_item m[BATCH_MESSAGES];
    size_t n_m;
    struct status_item s[BATCH_STATUSES];
    size_t n_s;
    /* results of the write (valid when it committed) */
    struct lucy_wa_worker_stats done;
    int media_queued;
};

/* Rate-limit decisions taken before a write that has not committed them
 * yet, by wa_messages.seq, ascending; the oldest are forgotten first. */
#define DECISIONS_MAX 4096
struct decision {
    sqlite3_int64 seq; /* the inbox item */
    int allowed;       /* the kv's answer */
};

struct lucy_wa_worker {
    struct lucy_thread thread;                /* "inbox-worker" */
    struct lucy_ctx *ctx;                     /* the daemon (not owned) */
    struct lucy_wa_media *media;              /* kicked after voice notes were queued */
    struct lucy_kv *kv;                       /* the daemon's kv (not owned); NULL = none */
    struct decision decisions[DECISIONS_MAX]; /* inbox-worker thread only */
    size_t n_decisions;
    struct lucy_wa_worker_stats stats; /* __atomic counters: read by /metrics */
};

static int64_t backoff_ms(int attempts)
{
    int64_t ms = RETRY_BASE_MS;
    for (int i = 0; i < attempts && ms < RETRY_MAX_MS; i++)
        ms *= 2;
    return ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS;
}

static void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n_m; i++) {
        struct msg_item *it = &b->m[i];
        free(it->wamid), free(it->sender), free(it->wa_id), free(it->user_id);
        free(it->type), free(it->profile_name), free(it->text);
        free(it->shared_alias_buf);
        json_decref(it->raw);
    }
    for (size_t i = 0; i < b->n_s; i++) {
        struct status_item *it = &b->s[i];
        free(it->id), free(it->status), free(it->recipient), free(it->errors);
    }
    b->n_m = b->n_s = 0;
}

/* ---- reading due work ----------------------------------------------------- */

/* Due messages, oldest first, skipping every sender whose earlier message
 * is still backing off (order per sender). */
static const char sql_due_messages[] =
    "SELECT seq, wamid, sender, wa_id, user_id, type, known_type, timestamp_s, profile_name, "
    "raw, received_at_ms, attempts FROM wa_messages m "
    "WHERE state = 'pending' AND next_attempt_ms <= ?1 AND NOT EXISTS ("
    " SELECT 1 FROM wa_messages p WHERE p.sender = m.sender AND p.state = 'pending'"
    " AND p.next_attempt_ms > ?1 AND (p.timestamp_s < m.timestamp_s"
    " OR (p.timestamp_s = m.timestamp_s AND p.seq < m.seq))) "
    "ORDER BY timestamp_s, seq LIMIT ?2";
static const char sql_due_statuses[] =
    "SELECT seq, id, status, recipient_id, timestamp_s, raw, attempts FROM wa_statuses "
    "WHERE state = 'pending' AND next_attempt_ms <= ?1 ORDER BY seq LIMIT ?2";

static int read_due(sqlite3 *db, void *arg)
{
    struct batch *b = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_due_messages, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, b->now_ms);
    sqlite3_bind_int(st, 2, BATCH_MESSAGES);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && b->n_m < BATCH_MESSAGES) {
        struct msg_item *it = &b->m[b->n_m++];
        memset(it, 0, sizeof *it);
        it->seq = sqlite3_column_int64(st, 0);
        it->wamid = lucy_row_dup(st, 1);
        it->sender = lucy_row_dup(st, 2);
        it->wa_id = lucy_row_dup(st, 3);
        it->user_id = lucy_row_dup(st, 4);
        it->type = lucy_row_dup(st, 5);
        it->known_type = sqlite3_column_int(st, 6);
        it->timestamp_s = sqlite3_column_int64(st, 7);
        it->profile_name = lucy_row_dup(st, 8);
        const char *raw = (const char *)sqlite3_column_text(st, 9);
        it->raw = raw ? json_loads(raw, JSON_ALLOW_NUL, NULL) : NULL;
        it->received_ms = sqlite3_column_int64(st, 10);
        it->attempts = sqlite3_column_int(st, 11);
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return lucy_store_err(rc);
    rc = lucy_store_stmt(db, sql_due_statuses, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, b->now_ms);
    sqlite3_bind_int(st, 2, BATCH_STATUSES);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && b->n_s < BATCH_STATUSES) {
        struct status_item *it = &b->s[b->n_s++];
        memset(it, 0, sizeof *it);
        it->seq = sqlite3_column_int64(st, 0);
        it->id = lucy_row_dup(st, 1);
        it->status = lucy_row_dup(st, 2);
        it->recipient = lucy_row_dup(st, 3);
        it->timestamp_s = sqlite3_column_int64(st, 4);
        const char *raw = (const char *)sqlite3_column_text(st, 5);
        json_t *obj = raw ? json_loads(raw, JSON_ALLOW_NUL, NULL) : NULL;
        json_t *errors = json_object_get(obj, "errors");
        if (errors)
            it->errors = json_dumps(errors, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(obj);
        it->attempts = sqlite3_column_int(st, 6);
    }
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : lucy_store_err(rc);
}

/* ---- applying it ---------------------------------------------------------- */

/* The statements of one apply_batch() call, taken once per batch from the
 * store's statement cache (prepared once per writer connection: parsing
 * SQL costs more than running it). */
enum {
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK,
    S_CONTACT,
    S_ALIAS_SYNC,
    S_MESSAGE_DONE,
    S_OUTGOING,
    S_STATUS_DONE,
    S_RETRY_MESSAGE,
    S_RETRY_STATUS,
    N_STMTS
};

static const char *const stmt_sql[N_STMTS] = {
    [S_SAVEPOINT] = "SAVEPOINT wa_item",
    [S_RELEASE] = "RELEASE wa_item",
    [S_ROLLBACK] = "ROLLBACK TO wa_item",
    /* the profile name updates the contact; a user-set alias (user_alias)
     * is never touched here; the caller merges it with the shared one */
    [S_CONTACT] =
        "INSERT INTO wa_contacts (id, wa_id, user_id, profile_name, messages, last_message_s, "
        "first_seen_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?6) "
        "ON CONFLICT (id) DO UPDATE SET wa_id = coalesce(excluded.wa_id, wa_id), "
        "user_id = coalesce(excluded.user_id, user_id), "
        "profile_name = coalesce(excluded.profile_name, profile_name), messages = messages + 1, "
        "last_message_s = max(coalesce(last_message_s, 0), excluded.last_message_s), "
        "updated_at_ms = excluded.updated_at_ms "
        "RETURNING user_alias, user_alias_set_at_ms",
    /* a newer alias another instance published becomes the local copy */
    [S_ALIAS_SYNC] = "UPDATE wa_contacts SET user_alias = ?2, user_alias_set_at_ms = ?3 "
                     "WHERE id = ?1",
    [S_MESSAGE_DONE] = "UPDATE wa_messages SET state = 'done', text = ?1, rate_limited = ?2, "
                       "processed_at_ms = ?3, last_error = NULL WHERE seq = ?4",
    /* the stored state moves only to a higher rank */
    [S_OUTGOING] =
        "INSERT INTO wa_outgoing (wamid, recipient_id, status, status_rank, status_time_s, "
        "errors, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (wamid) DO "
        "UPDATE SET status = excluded.status, status_rank = excluded.status_rank, "
        "status_time_s = excluded.status_time_s, errors = coalesce(excluded.errors, errors), "
        "recipient_id = coalesce(excluded.recipient_id, recipient_id), "
        "updated_at_ms = excluded.updated_at_ms "
        "WHERE excluded.status_rank > wa_outgoing.status_rank",
    [S_STATUS_DONE] = "UPDATE wa_statuses SET state = 'done', last_error = NULL WHERE seq = ?1",
    [S_RETRY_MESSAGE] = "UPDATE wa_messages SET attempts = attempts + 1, next_attempt_ms = ?1, "
                        "last_error = ?2 WHERE seq = ?3",
    [S_RETRY_STATUS] = "UPDATE wa_statuses SET attempts = attempts + 1, next_attempt_ms = ?1, "
                       "last_error = ?2 WHERE seq = ?3",
};

struct stmts {
    sqlite3_stmt *st[N_STMTS];
};

/* The statements are owned by the store (lucy_store_stmt): never
 * finalized here, valid until apply_batch() returns. */
static int stmts_open(sqlite3 *db, struct stmts *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < N_STMTS; i++) {
        int rc = lucy_store_stmt(db, stmt_sql[i], &s->st[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Steps a bound statement to its end and resets it. 0 or a store error. */
static int step(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* Inside the item's savepoint: the contact row (profile name) and the
 * user's alias, the newer of local and shared; a newer shared one is
 * copied into the local row, which document.c then titles from. */
static int apply_contact(sqlite3 *db, struct batch *b, struct stmts *s, struct msg_item *it)
{
    sqlite3_stmt *st = s->st[S_CONTACT];
    lucy_row_bind_text(st, 1, it->sender);
    lucy_row_bind_text(st, 2, it->wa_id);
    lucy_row_bind_text(st, 3, it->user_id);
    lucy_row_bind_text(st, 4, it->profile_name);
    sqlite3_bind_int64(st, 5, it->timestamp_s);
    sqlite3_bind_int64(st, 6, b->now_ms);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return lucy_store_err(rc);
    }
    struct lucy_wa_alias local = {
        .known =
            sqlite3_column_type(st, 0) != SQLITE_NULL || sqlite3_column_type(st, 1) != SQLITE_NULL,
        .alias = (const char *)sqlite3_column_text(st, 0),
        .set_at_ms = sqlite3_column_int64(st, 1),
    };
    int sync = lucy_wa_alias_pick(&local, &it->shared_alias) != &local;
    rc = step(st); /* column pointers are gone from here on */
    if (rc == 0 && sync) {
        st = s->st[S_ALIAS_SYNC];
        lucy_row_bind_text(st, 1, it->sender);
        lucy_row_bind_text(st, 2, it->shared_alias.alias);
        sqlite3_bind_int64(st, 3, it->shared_alias.set_at_ms);
        rc = step(st);
        /* the sender's name changed here: its older indexed messages
         * follow it, in this item's savepoint */
        if (rc == 0)
            rc = lucy_wa_contact_retitle(db, it->sender, NULL);
    }
    return rc;
}

/* Inside the item's savepoint: the sender as a person (src/people), by its
 * wa_id (which also links it to the phone it spells) or else its user_id,
 * with its profile name. An id people refuses (LUCY_EINVAL: not a wa_id's
 * digits) costs the message nothing: it is stored without a person. */
static int observe_sender(sqlite3 *db, const struct msg_item *it)
{
    const char *kind = it->wa_id ? "wa_id" : "user_id";
    const char *value = it->wa_id ? it->wa_id : it->user_id;
    int rc =
        value ? lucy_people_observe(db, kind, value, it->profile_name, "profile_name", NULL) : 0;
    return rc == LUCY_EINVAL ? 0 : rc;
}

static int apply_message(sqlite3 *db, struct batch *b, struct stmts *s, struct msg_item *it)
{
    int rc = apply_contact(db, b, s, it);
    if (rc == 0)
        rc = observe_sender(db, it);
    int allowed = 1;
    if (it->decided) {
        allowed = it->allowed;
    } else if (rc == 0 && b->rate_count > 0 && !it->elsewhere) {
        /* the step runs in this item's savepoint. Arrival time, not the
         * payload's timestamp: Meta does not order its deliveries, and
         * GCRA needs (nearly) ordered times */
        char key[LUCY_WA_KEY_MAX];
        snprintf(key, sizeof key, "whatsapp:%.300s", it->sender);
        struct lucy_kv_rate rate = {b->rate_count, (int64_t)b->rate_period_s * 1000, b->rate_count,
                                    it->received_ms};
        struct lucy_kv_rate_result rr = {.allowed = b->policy_allowed};
        if (b->rl_in_write)
            rc = lucy_kv_ratelimit_in_write(b->kv, db, key, &rate, &rr, NULL);
        allowed = rr.allowed;
    }
    const char *text = it->text;
    if (rc == 0 && strcmp(it->type, "audio") == 0 && !it->elsewhere) {
        rc = lucy_wa_media_enqueue(db, it->wamid, it->raw, b->have_token, &text);
        b->media_queued += rc == 0 && b->have_token;
    }
    if (rc == 0) {
        sqlite3_stmt *st = s->st[S_MESSAGE_DONE];
        lucy_row_bind_text(st, 1, text);
        sqlite3_bind_int(st, 2, !allowed);
        sqlite3_bind_int64(st, 3, b->now_ms);
        sqlite3_bind_int64(st, 4, it->seq);
        rc = step(st);
    }
    /* processed (indexed) by the instance that claimed it; stored here too */
    if (rc == 0 && text && *text && !it->elsewhere)
        rc = lucy_wa_index_message(db, it->wamid, text);
    if (rc == 0) {
        b->done.processed++;
        b->done.rate_limited += !allowed;
        b->done.unknown_types += !it->known_type;
    }
    return rc;
}

static int apply_status(struct batch *b, struct stmts *s, struct status_item *it)
{
    sqlite3_stmt *st = s->st[S_OUTGOING];
    lucy_row_bind_text(st, 1, it->id);
    lucy_row_bind_text(st, 2, it->recipient);
    lucy_row_bind_text(st, 3, it->status);
    sqlite3_bind_int(st, 4, lucy_wa_status_rank(it->status));
    sqlite3_bind_int64(st, 5, it->timestamp_s);
    lucy_row_bind_text(st, 6, it->errors);
    sqlite3_bind_int64(st, 7, b->now_ms);
    int rc = step(st);
    if (rc == 0) {
        st = s->st[S_STATUS_DONE];
        sqlite3_bind_int64(st, 1, it->seq);
        rc = step(st);
    }
    b->done.statuses += rc == 0;
    return rc;
}

/* Runs one item in its own savepoint; on failure rolls it back and leaves
 * it pending with backoff (retry_stmt). Returns non-zero only when the
 * transaction itself is gone (then the whole write fails). */
static int one_item(sqlite3 *db, struct batch *b, struct stmts *s, int retry_stmt,
                    sqlite3_int64 seq, int attempts, struct msg_item *m, struct status_item *st,
                    int *failed)
{
    *failed = 0;
    int rc = step(s->st[S_SAVEPOINT]);
    if (rc)
        return rc;
    rc = m ? apply_message(db, b, s, m) : apply_status(b, s, st);
    if (rc == 0) {
        rc = step(s->st[S_RELEASE]);
        if (m)
            m->applied = rc == 0;
        return rc;
    }
    if (sqlite3_get_autocommit(db))
        return rc; /* SQLite rolled back the whole transaction */
    step(s->st[S_ROLLBACK]);
    step(s->st[S_RELEASE]);
    *failed = 1;
    b->done.retries++;
    lucy_log(LUCY_LOG_WARNING, "whatsapp item left pending", "{s:s,s:s,s:i}", "kind",
             m ? "message" : "status", "error", lucy_strerror(rc), "attempts", attempts + 1);
    sqlite3_stmt *r = s->st[retry_stmt];
    sqlite3_bind_int64(r, 1, b->now_ms + backoff_ms(attempts));
    sqlite3_bind_text(r, 2, lucy_strerror(rc), -1, SQLITE_STATIC);
    sqlite3_bind_int64(r, 3, seq);
    return step(r);
}

static int apply_batch(sqlite3 *db, void *arg)
{
    struct batch *b = arg;
    memset(&b->done, 0, sizeof b->done);
    b->media_queued = 0;
    struct stmts s;
    int rc = stmts_open(db, &s);
    if (rc)
        return rc;
    const char *blocked[BATCH_MESSAGES]; /* senders with a failed message */
    size_t n_blocked = 0;
    for (size_t i = 0; rc == 0 && i < b->n_m; i++) {
        struct msg_item *it = &b->m[i];
        int skip = 0, failed = 0;
        for (size_t j = 0; j < n_blocked && !skip; j++)
            skip = strcmp(blocked[j], it->sender) == 0;
        if (skip)
            continue;
        rc = one_item(db, b, &s, S_RETRY_MESSAGE, it->seq, it->attempts, it, NULL, &failed);
        if (failed)
            blocked[n_blocked++] = it->sender;
    }
    for (size_t i = 0; rc == 0 && i < b->n_s; i++) {
        int failed;
        rc = one_item(db, b, &s, S_RETRY_STATUS, b->s[i].seq, b->s[i].attempts, NULL, &b->s[i],
                      &failed);
    }
    return rc;
}

/* ---- the kv, before the write -------------------------------------------- */

/* Shared state (issue 5), OUTSIDE the store write so a hung Redis never
 * holds the writer. See the file comment for why nothing here can cost a
 * message. */
#define WAMID_CLAIM_TTL_MS (8LL * 24 * 3600 * 1000) /* Meta retries for 7 days */

static struct decision *decision_find(struct lucy_wa_worker *w, sqlite3_int64 seq)
{
    size_t lo = 0, hi = w->n_decisions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (w->decisions[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < w->n_decisions && w->decisions[lo].seq == seq ? &w->decisions[lo] : NULL;
}

static void decision_remember(struct lucy_wa_worker *w, sqlite3_int64 seq, int allowed)
{
    if (w->n_decisions == DECISIONS_MAX) { /* forget the oldest */
        memmove(w->decisions, w->decisions + 1, (DECISIONS_MAX - 1) * sizeof w->decisions[0]);
        w->n_decisions--;
    }
    size_t i = w->n_decisions;
    while (i > 0 && w->decisions[i - 1].seq > seq)
        i--;
    memmove(w->decisions + i + 1, w->decisions + i, (w->n_decisions - i) * sizeof w->decisions[0]);
    w->decisions[i] = (struct decision){seq, allowed};
    w->n_decisions++;
}

static void decision_forget(struct lucy_wa_worker *w, sqlite3_int64 seq)
{
    struct decision *d = decision_find(w, seq);
    if (!d)
        return;
    size_t i = (size_t)(d - w->decisions);
    memmove(d, d + 1, (w->n_decisions - i - 1) * sizeof *d);
    w->n_decisions--;
}

/* Claim, rate limit (when the kv cannot do it inside the write) and the
 * profile name, for one message. */
static void kv_prepare(struct lucy_wa_worker *w, const struct batch *b, struct msg_item *it)
{
    char key[LUCY_WA_KEY_MAX];
    if (b->kv_shared) {
        int mine = 1;
        snprintf(key, sizeof key, "wa:wamid:%.300s", it->wamid);
        lucy_kv_claim(w->kv, key, WAMID_CLAIM_TTL_MS, &mine, 0, NULL);
        it->elsewhere = !mine;
        if (it->elsewhere)
            return;
    }
    if (b->rate_count > 0 && !b->rl_in_write && w->kv) {
        const struct decision *d = decision_find(w, it->seq);
        struct lucy_kv_rate_result rr;
        if (d) { /* a retry: the sender's limit was taken already */
            rr.allowed = d->allowed;
        } else {
            struct lucy_kv_rate rate = {b->rate_count, (int64_t)b->rate_period_s * 1000,
                                        b->rate_count, it->received_ms};
            snprintf(key, sizeof key, "whatsapp:%.300s", it->sender);
            lucy_kv_ratelimit(w->kv, key, &rate, &rr, 0, NULL);
            if (!rr.from_policy) /* a policy answer took nothing: ask again next time */
                decision_remember(w, it->seq, rr.allowed);
        }
        it->decided = 1;
        it->allowed = rr.allowed;
    }
    if (b->kv_shared && it->profile_name && lucy_wa_profile_key(key, sizeof key, it->sender) == 0)
        lucy_kv_set_or_queue(w->kv, key, it->profile_name, strlen(it->profile_name), NULL, 0, NULL);
}

/* The shared user aliases of every message's sender, in one get_many. A kv
 * that does not answer leaves them unknown: the local row decides. */
static void kv_aliases(struct lucy_wa_worker *w, struct batch *b)
{
    if (!w->kv || b->n_m == 0)
        return;
    const char *ids[BATCH_MESSAGES];
    for (size_t i = 0; i < b->n_m; i++)
        ids[i] = b->m[i].sender;
    struct lucy_wa_shared_names *names = calloc(b->n_m, sizeof *names);
    if (!names)
        return;
    if (lucy_wa_shared_names_get(w->kv, ids, b->n_m, 0, names, 0) == 0)
        for (size_t i = 0; i < b->n_m; i++) {
            b->m[i].shared_alias = names[i].alias;
            b->m[i].shared_alias_buf = names[i].alias_buf; /* moved */
            names[i].alias_buf = NULL;
        }
    lucy_wa_shared_names_free(names, b->n_m);
    free(names);
}

/* One round. Returns the number of items handled (0 = idle) or a LUCY_E*
 * code when the store could not be read or written. */
static int round_once(struct lucy_wa_worker *w, struct batch *b)
{
    const struct lucy_config *cfg = w->ctx->cfg;
    b->now_ms = lucy_wall_ms();
    b->have_token = cfg->whatsapp_access_token && *cfg->whatsapp_access_token;
    b->rate_count = cfg->rate_limit_count;
    b->rate_period_s = cfg->rate_limit_period_s;
    b->kv = w->kv;
    unsigned caps = w->kv ? lucy_kv_caps(w->kv) : 0;
    b->kv_shared = (caps & LUCY_KV_CAP_SHARED) != 0;
    b->rl_in_write = (caps & LUCY_KV_CAP_IN_STORE) != 0;
    b->policy_allowed =
        !(cfg->rate_limit_on_error && strcmp(cfg->rate_limit_on_error, "deny") == 0);
    int rc = lucy_store_read(w->ctx->store, read_due, b);
    if (rc == 0 && b->n_m + b->n_s == 0)
        return 0;
    for (size_t i = 0; rc == 0 && i < b->n_m; i++) {
        struct msg_item *it = &b->m[i];
        if (!it->wamid || !it->sender || !it->type)
            rc = LUCY_ENOMEM;
        else if (!it->raw)
            it->text = strdup(""); /* unreadable raw JSON: stored, not indexed */
        else
            it->text = it->known_type ? lucy_wa_message_text(it->raw) : strdup("");
        if (rc == 0 && !it->text)
            rc = LUCY_ENOMEM;
        if (rc == 0)
            kv_prepare(w, b, it);
    }
    if (rc == 0)
        kv_aliases(w, b);
    if (rc == 0)
        rc = lucy_store_write(w->ctx->store, apply_batch, b, 0);
    for (size_t i = 0; rc == 0 && i < b->n_m; i++)
        if (b->m[i].applied && b->m[i].decided) /* committed: its decision is spent */
            decision_forget(w, b->m[i].seq);
    int handled = (int)(b->n_m + b->n_s);
    batch_clear(b);
    if (rc)
        return rc;
    __atomic_fetch_add(&w->stats.processed, b->done.processed, __ATOMIC_RELAXED);
    __atomic_fetch_add(&w->stats.statuses, b->done.statuses, __ATOMIC_RELAXED);
    __atomic_fetch_add(&w->stats.rate_limited, b->done.rate_limited, __ATOMIC_RELAXED);
    __atomic_fetch_add(&w->stats.retries, b->done.retries, __ATOMIC_RELAXED);
    __atomic_fetch_add(&w->stats.unknown_types, b->done.unknown_types, __ATOMIC_RELAXED);
    if (b->media_queued && w->media)
        lucy_wa_media_kick(w->media);
    return handled;
}

/* ---- contacts of older releases become persons --------------------------- */

/* Every contact whose wa_id (else user_id) no person holds yet: contacts
 * stored before people existed (schema 45), or created by PUT /contacts
 * for a contact only another instance had seen. Each becomes a person with
 * its profile name and the user's alias. Idempotent: a contact already a
 * person is not selected again. */
static const char sql_unmigrated[] =
    "SELECT coalesce(wa_id, user_id), CASE WHEN wa_id IS NULL THEN 'user_id' ELSE 'wa_id' END,"
    " profile_name, user_alias, wa_id IS NOT NULL AND user_id IS NOT NULL, user_id "
    "FROM wa_contacts c WHERE coalesce(wa_id, user_id) IS NOT NULL AND NOT EXISTS ("
    " SELECT 1 FROM people_identifiers i WHERE i.value = coalesce(c.wa_id, c.user_id)"
    " AND i.kind = CASE WHEN c.wa_id IS NULL THEN 'user_id' ELSE 'wa_id' END) LIMIT 500";

static int contacts_to_people(sqlite3 *db, void *arg)
{
    int *left = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_unmigrated, &st);
    if (rc)
        return rc;
    int seen = 0, made = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *value = (const char *)sqlite3_column_text(st, 0);
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        const char *alias = (const char *)sqlite3_column_text(st, 3);
        int64_t person = 0;
        seen++;
        rc = lucy_people_observe(db, kind, value, (const char *)sqlite3_column_text(st, 2),
                                 "profile_name", &person);
        if (rc == 0 && sqlite3_column_int(st, 4)) /* both ids: the user_id too */
            rc = lucy_people_observe(db, "user_id", (const char *)sqlite3_column_text(st, 5), NULL,
                                     NULL, NULL);
        if (rc == 0 && alias && *alias)
            rc = lucy_people_set_alias(db, person, alias, lucy_wall_ms(), NULL);
        made += rc == 0;
        if (rc == LUCY_EINVAL) /* not an id people takes: it stays a contact only */
            rc = 0;
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = lucy_store_err(step);
    *left = seen == 500 && made > 0; /* a page of refused ids would come back forever */
    return rc;
}

/* 0 when every contact is a person, else a store error (retried later). */
static int migrate_contacts(struct lucy_wa_worker *w)
{
    int left = 1, rc = 0;
    while (rc == 0 && left)
        rc = lucy_store_write(w->ctx->store, contacts_to_people, &left, 0);
    return rc;
}

static void worker_main(void *arg)
{
    struct lucy_wa_worker *w = arg;
    struct batch *b = calloc(1, sizeof *b);
    int failures = 0, migrated = 0;
    while (b) {
        /* before the first round: older contacts are persons before new
         * messages add names to them */
        int n = migrated ? 0 : migrate_contacts(w);
        migrated |= n == 0;
        if (n == 0)
            n = round_once(w, b);
        int64_t wait_ms = 0;
        if (n < 0) {
            lucy_log(LUCY_LOG_WARNING, "inbox worker cannot use the store; retrying", "{s:s,s:i}",
                     "error", lucy_strerror(n), "failures", failures + 1);
            wait_ms = backoff_ms(failures++);
        } else {
            failures = 0;
            wait_ms = n == 0 ? POLL_MS : 0;
        }
        if (lucy_thread_nap(&w->thread, wait_ms))
            break;
    }
    free(b);
}

struct lucy_wa_worker *lucy_wa_worker_start(struct lucy_ctx *ctx, struct lucy_kv *kv,
                                            struct lucy_wa_media *media)
{
    struct lucy_wa_worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->ctx = ctx;
    w->kv = kv;
    w->media = media;
    w->thread = (struct lucy_thread){.name = "inbox-worker", .main = worker_main, .arg = w};
    if (lucy_thread_start(&w->thread) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void lucy_wa_worker_kick(struct lucy_wa_worker *w)
{
    lucy_thread_kick(&w->thread);
}

void lucy_wa_worker_stop(struct lucy_wa_worker *w)
{
    if (!w)
        return;
    lucy_thread_stop(&w->thread);
    free(w);
}

void lucy_wa_worker_stats(struct lucy_wa_worker *w, struct lucy_wa_worker_stats *out)
{
    out->processed = __atomic_load_n(&w->stats.processed, __ATOMIC_RELAXED);
    out->statuses = __atomic_load_n(&w->stats.statuses, __ATOMIC_RELAXED);
    out->rate_limited = __atomic_load_n(&w->stats.rate_limited, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&w->stats.retries, __ATOMIC_RELAXED);
    out->unknown_types = __atomic_load_n(&w->stats.unknown_types, __ATOMIC_RELAXED);
}
