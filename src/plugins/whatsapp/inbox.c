/*
 * inbox.c - GET/POST /webhook/whatsapp: the no-loss inbox (DESIGN §5, §8).
 *
 * POST, in order, on an HTTP pool thread:
 *   1. signature: X-Hub-Signature-256 over the raw bytes (signature.c);
 *      missing or wrong -> 401, nothing stored, nothing about the body
 *      logged. Without WHATSAPP_APP_SECRET unsigned posts are taken only
 *      when lucy listens on loopback; otherwise 503 not_configured (Meta
 *      keeps retrying until the secret is set, so nothing is lost).
 *   2. parse (payload.c); not JSON / not a webhook object -> 400.
 *   3. ONE store write: the raw body (de-duplicated by its SHA-256),
 *      every message (INSERT .. ON CONFLICT(wamid) DO NOTHING) and every
 *      status (ON CONFLICT(id, status) DO NOTHING). It is asynchronous
 *      (lucy_store_write_async: queued ahead of background writes) and the
 *      reply is deferred (lucy_http_defer), so the pool thread serves other
 *      deliveries while this one waits, and many deliveries share one
 *      group commit. The store calls back only after the fsync.
 *   4. only then 200 {"status":"accepted","messages":N,"statuses":S,
 *      "duplicates":D}: N messages and S statuses (delivery reports of
 *      the owner's outgoing messages, not messages) in the body, D of the
 *      N + S already stored.
 *      If the write failed: 507 disk_full (LUCY_ENOSPC) or 503
 *      dependency_unavailable, both with Retry-After. Meta retries anything
 *      but 200 for days, so a refused delivery costs nothing.
 *
 * A wamid the user had lucy forget (tombstoned, forget.c) is acknowledged
 * as a duplicate and not stored again; a delivery that carried nothing
 * but forgotten messages keeps no bytes either.
 *
 * De-duplication is the UNIQUE constraints, checked by the single store
 * writer thread: two racing deliveries of one wamid are serialised there, so
 * exactly one inserts and the other counts a duplicate, whichever batch
 * they land in. A duplicate is acknowledged (it is on disk) and not
 * processed again.
 *
 * The handlers reach the plugin's state (struct lucy_wa) as req->arg; the
 * only call out of this file is the kick that wakes the inbox worker.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../clock.h"
#include "../../error.h"
#include "../../http/http.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "../../store/tombstones.h"
#include "whatsapp.h"

static const char *const reject_names[LUCY_WA_REJECT_COUNT] = {
    [LUCY_WA_REJECT_SIGNATURE_MISSING] = "signature_missing",
    [LUCY_WA_REJECT_SIGNATURE_INVALID] = "signature_invalid",
    [LUCY_WA_REJECT_BAD_REQUEST] = "bad_request",
    [LUCY_WA_REJECT_NOT_CONFIGURED] = "not_configured",
    [LUCY_WA_REJECT_DISK_FULL] = "disk_full",
    [LUCY_WA_REJECT_STORE_UNAVAILABLE] = "store_unavailable",
};

const char *lucy_wa_reject_name(enum lucy_wa_reject r)
{
    return reject_names[r];
}

static void count(unsigned long long *c, unsigned long long n)
{
    __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* ---- the store write ----------------------------------------------------- */

struct ingest {
    const struct lucy_wa_payload *p; /* parsed items */
    const char *body;                /* raw bytes */
    size_t body_len;
    unsigned char sha256[32]; /* of body */
    int64_t now_ms;           /* receive time */
    int new_items;            /* set by the write: inserted */
    int duplicates;           /* set by the write: already stored */
};

static const char sql_body[] =
    "INSERT INTO wa_inbox_bodies (sha256, received_at_ms, body) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (sha256) DO NOTHING";
static const char sql_body_id[] = "SELECT id FROM wa_inbox_bodies WHERE sha256 = ?1";
static const char sql_message[] =
    "INSERT INTO wa_messages (wamid, body_id, sender, wa_id, user_id, phone_number_id, type, "
    "known_type, timestamp_s, profile_name, raw, received_at_ms) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT (wamid) DO NOTHING";
static const char sql_status[] =
    "INSERT INTO wa_statuses (id, status, body_id, recipient_id, timestamp_s, raw, "
    "received_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (id, status) DO NOTHING";

/* Steps a bound INSERT; returns 0 and adds 1 to *inserted or *dup. */
static int step_insert(sqlite3 *db, sqlite3_stmt *st, int *inserted, int *dup)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE)
        return lucy_store_err(rc);
    if (sqlite3_changes(db) > 0)
        (*inserted)++;
    else
        (*dup)++;
    return 0;
}

/* Deletes the body just inserted (nothing of it is kept). */
static int drop_body(sqlite3 *db, sqlite3_int64 body_id)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, "DELETE FROM wa_inbox_bodies WHERE id = ?1", &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, body_id);
    return lucy_row_step_done(st);
}

/* The body's row id; *fresh = 1 when this call inserted it. */
static int body_row(sqlite3 *db, struct ingest *in, sqlite3_int64 *body_id, int *fresh)
{
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_body, &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, in->sha256, sizeof in->sha256, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, in->now_ms);
    sqlite3_bind_blob(st, 3, in->body, (int)in->body_len, SQLITE_STATIC);
    int src = sqlite3_step(st);
    sqlite3_reset(st);
    if (src != SQLITE_DONE)
        return lucy_store_err(src);
    if (sqlite3_changes(db) > 0) {
        *fresh = 1;
        *body_id = sqlite3_last_insert_rowid(db);
        return 0;
    }
    rc = lucy_store_stmt(db, sql_body_id, &st);
    if (rc)
        return rc;
    sqlite3_bind_blob(st, 1, in->sha256, sizeof in->sha256, SQLITE_STATIC);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *body_id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return src == SQLITE_ROW ? 0 : lucy_store_err(src == SQLITE_DONE ? SQLITE_CORRUPT : src);
}

/* The store write: runs on the writer thread, statements from its cache. */
static int ingest_write(sqlite3 *db, void *arg)
{
    struct ingest *in = arg;
    const struct lucy_wa_payload *p = in->p;
    in->new_items = in->duplicates = 0;
    sqlite3_int64 body_id = 0;
    int forgotten = 0, fresh_body = 0;
    int rc = body_row(db, in, &body_id, &fresh_body);
    if (rc)
        return rc;
    sqlite3_stmt *msg = NULL, *sts = NULL;
    if (p->n_messages)
        rc = lucy_store_stmt(db, sql_message, &msg);
    if (rc == 0 && p->n_statuses)
        rc = lucy_store_stmt(db, sql_status, &sts);
    for (size_t i = 0; rc == 0 && i < p->n_messages; i++) {
        const struct lucy_wa_message *m = &p->messages[i];
        if ((rc = lucy_forget_wamid_tombstoned(db, m->wamid)) != 0) { /* forgotten (forget.c) */
            in->duplicates += rc > 0;
            forgotten += rc > 0;
            rc = rc > 0 ? 0 : rc;
            continue;
        }
        lucy_row_bind_text(msg, 1, m->wamid);
        sqlite3_bind_int64(msg, 2, body_id);
        lucy_row_bind_text(msg, 3, m->sender);
        lucy_row_bind_text(msg, 4, m->wa_id);
        lucy_row_bind_text(msg, 5, m->user_id);
        lucy_row_bind_text(msg, 6, m->phone_number_id);
        lucy_row_bind_text(msg, 7, m->type);
        sqlite3_bind_int(msg, 8, m->known_type);
        sqlite3_bind_int64(msg, 9, m->timestamp_s);
        lucy_row_bind_text(msg, 10, m->profile_name);
        lucy_row_bind_text(msg, 11, m->raw);
        sqlite3_bind_int64(msg, 12, in->now_ms);
        rc = step_insert(db, msg, &in->new_items, &in->duplicates);
    }
    for (size_t i = 0; rc == 0 && i < p->n_statuses; i++) {
        const struct lucy_wa_status *s = &p->statuses[i];
        lucy_row_bind_text(sts, 1, s->id);
        lucy_row_bind_text(sts, 2, s->status);
        sqlite3_bind_int64(sts, 3, body_id);
        lucy_row_bind_text(sts, 4, s->recipient_id);
        sqlite3_bind_int64(sts, 5, s->timestamp_s);
        lucy_row_bind_text(sts, 6, s->raw);
        sqlite3_bind_int64(sts, 7, in->now_ms);
        rc = step_insert(db, sts, &in->new_items, &in->duplicates);
    }
    /* A retried delivery of forgotten messages only: keep none of its bytes */
    if (rc == 0 && forgotten && fresh_body && in->new_items == 0)
        rc = drop_body(db, body_id);
    return rc;
}

/* ---- POST ---------------------------------------------------------------- */

static void reject(struct lucy_wa *wa, enum lucy_wa_reject why)
{
    count(&wa->rejected[why], 1);
}

/* Replies to a commit that did not happen. Never 200. */
static void reply_not_stored(struct lucy_wa *wa, struct lucy_http_response *resp, int rc)
{
    char message[512];
    if (rc == LUCY_ENOSPC) {
        reject(wa, LUCY_WA_REJECT_DISK_FULL);
        snprintf(message, sizeof message,
                 "the inbox could not store this delivery: the data dir's disk is full. Nothing "
                 "was accepted; retry later (Meta retries by itself). Operators: free space on "
                 "the data dir's file system");
    } else {
        reject(wa, LUCY_WA_REJECT_STORE_UNAVAILABLE);
        snprintf(message, sizeof message,
                 "the inbox could not store this delivery (%s). Nothing was accepted; retry later "
                 "(Meta retries by itself). Operators: check that the data dir is writable "
                 "(`lucy doctor`)",
                 lucy_strerror(rc));
        /* every failure that is not "disk full" is a store that cannot
         * commit now: 503 with Retry-After */
        if (rc != LUCY_EIO && rc != LUCY_EUNAVAIL && rc != LUCY_ETIMEDOUT && rc != LUCY_ESHUTDOWN)
            rc = LUCY_EUNAVAIL;
    }
    lucy_log(LUCY_LOG_WARNING, "webhook delivery not stored", "{s:s}", "error", lucy_strerror(rc));
    lucy_http_reply_err(resp, rc, message);
}

static int check_signature(struct lucy_wa *wa, struct lucy_http_request *req,
                           struct lucy_http_response *resp)
{
    const char *secret = req->ctx->cfg->whatsapp_app_secret;
    if (!secret || !*secret) {
        if (wa->unsigned_ok)
            return 0;
        reject(wa, LUCY_WA_REJECT_NOT_CONFIGURED);
        lucy_http_reply_error(resp, LUCY_HTTP_NOT_CONFIGURED, 60,
                              "WHATSAPP_APP_SECRET is not set and lucy listens on a non-loopback "
                              "address, so unsigned webhooks are refused; set WHATSAPP_APP_SECRET "
                              "to the app secret of your Meta app");
        return -1;
    }
    const char *header = lucy_http_header(req, "X-Hub-Signature-256");
    int rc = lucy_wa_signature_check(secret, header, req->body, req->body_len);
    if (rc == 0)
        return 0;
    enum lucy_wa_reject why =
        header ? LUCY_WA_REJECT_SIGNATURE_INVALID : LUCY_WA_REJECT_SIGNATURE_MISSING;
    reject(wa, why);
    /* nothing about the body or the header's value is logged */
    lucy_log(LUCY_LOG_WARNING, "webhook signature rejected", "{s:s}", "reason",
             lucy_wa_reject_name(why));
    lucy_http_reply_error(resp, LUCY_HTTP_UNAUTHORIZED, 0,
                          header ? "X-Hub-Signature-256 does not match the body: sign the exact "
                                   "body bytes with HMAC-SHA256 and the app secret "
                                   "(WHATSAPP_APP_SECRET)"
                                 : "missing X-Hub-Signature-256 header: Meta signs every webhook; "
                                   "send 'X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the "
                                   "body with the app secret>'");
    return -1;
}

/* One delivery between its handler and its deferred reply. Owned by the
 * request: freed by ingest_reply(). */
struct ingest_job {
    struct lucy_wa *wa;
    struct lucy_wa_payload p;         /* parsed items (in.p points here) */
    struct ingest in;                 /* the store write's argument */
    struct lucy_http_deferred *reply; /* resumed when the write is over */
    int rc;                           /* the write's result: 0 = durable */
};

/* Writer thread, after the commit and fsync (or the failure): hand the
 * result to an HTTP thread. Nothing else, the writer is waiting. */
static void ingest_done(void *arg, int rc)
{
    struct ingest_job *job = arg;
    job->rc = rc;
    lucy_http_resume(job->reply);
}

/* HTTP thread, after ingest_done: the reply. 200 only for rc == 0, i.e. a
 * commit that was fsynced. */
static void ingest_reply(struct lucy_http_request *req, struct lucy_http_response *resp, void *arg)
{
    (void)req;
    struct ingest_job *job = arg;
    struct lucy_wa *wa = job->wa;
    size_t n_messages = job->p.n_messages, n_statuses = job->p.n_statuses;
    lucy_wa_payload_free(&job->p);
    if (job->rc) {
        reply_not_stored(wa, resp, job->rc);
    } else {
        count(&wa->bodies, 1);
        count(&wa->accepted, (unsigned long long)job->in.new_items);
        count(&wa->duplicates, (unsigned long long)job->in.duplicates);
        struct lucy_wa_worker *worker = __atomic_load_n(&wa->worker, __ATOMIC_ACQUIRE);
        if (job->in.new_items && worker)
            lucy_wa_worker_kick(worker);
        lucy_http_reply_json(resp, 200,
                             json_pack("{s:s,s:I,s:I,s:I}", "status", "accepted", "messages",
                                       (json_int_t)n_messages, "statuses", (json_int_t)n_statuses,
                                       "duplicates", (json_int_t)job->in.duplicates));
    }
    free(job);
}

static void post_webhook(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    struct lucy_wa *wa = req->arg;
    if (check_signature(wa, req, resp) != 0)
        return;
    struct ingest_job *job = calloc(1, sizeof *job);
    if (!job) {
        reply_not_stored(wa, resp, LUCY_ENOMEM);
        return;
    }
    job->wa = wa;
    char err[256];
    int rc = lucy_wa_payload_parse(req->body, req->body_len, &job->p, err, sizeof err);
    if (rc) {
        lucy_wa_payload_free(&job->p);
        free(job);
        if (rc != LUCY_EINVAL) {
            reply_not_stored(wa, resp, rc);
            return;
        }
        reject(wa, LUCY_WA_REJECT_BAD_REQUEST);
        lucy_http_reply_error(resp, LUCY_HTTP_BAD_REQUEST, 0,
                              "%.300s; send the webhook body exactly as Meta posts it", err);
        return;
    }
    /* the raw body is bound as is (SQLITE_STATIC): it lives in the request
     * until the deferred reply is finished */
    job->in = (struct ingest){
        .p = &job->p, .body = req->body, .body_len = req->body_len, .now_ms = lucy_wall_ms()};
    unsigned int md_len = 0;
    if (!EVP_Digest(req->body, req->body_len, job->in.sha256, &md_len, EVP_sha256(), NULL)) {
        lucy_wa_payload_free(&job->p);
        free(job);
        reply_not_stored(wa, resp, LUCY_ENOMEM);
        return;
    }
    /* the reply waits for the fsync without holding this pool thread */
    job->reply = lucy_http_defer(req, ingest_reply, job);
    rc = lucy_store_write_async(req->ctx->store, ingest_write, &job->in, ingest_done, job);
    if (rc) /* not queued (shutting down, no memory): answer with that */
        ingest_done(job, rc);
}

/* ---- GET: the verification handshake ------------------------------------- */

/* Constant-time string equality: both sides hashed first, so neither the
 * length nor the position of a difference shows in the time taken. */
static int token_equal(const char *a, const char *b)
{
    unsigned char da[32], db[32];
    unsigned int la = 0, lb = 0;
    if (!EVP_Digest(a, strlen(a), da, &la, EVP_sha256(), NULL) ||
        !EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL))
        return 0;
    return CRYPTO_memcmp(da, db, sizeof da) == 0;
}

static void get_webhook(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    const char *want = req->ctx->cfg->whatsapp_verify_token;
    const char *mode = lucy_http_query(req, "hub.mode");
    const char *token = lucy_http_query(req, "hub.verify_token");
    const char *challenge = lucy_http_query(req, "hub.challenge");
    if (!want || !*want) {
        lucy_http_reply_error(resp, LUCY_HTTP_FORBIDDEN, 0,
                              "WHATSAPP_VERIFY_TOKEN is not set: set it to the verify token you "
                              "entered in Meta's webhook settings, then verify again");
        return;
    }
    if (!mode || strcmp(mode, "subscribe") != 0 || !token || !challenge ||
        !token_equal(token, want)) {
        lucy_log(LUCY_LOG_WARNING, "webhook verification refused", NULL);
        lucy_http_reply_error(resp, LUCY_HTTP_FORBIDDEN, 0,
                              "verification refused: hub.mode must be 'subscribe' and "
                              "hub.verify_token must equal WHATSAPP_VERIFY_TOKEN");
        return;
    }
    lucy_log(LUCY_LOG_INFO, "webhook verified", NULL);
    lucy_http_reply_text(resp, 200, "text/plain; charset=utf-8", challenge, strlen(challenge));
}

/* Meta's documented maximum payload is 3 MB (DESIGN §11). */
#define WEBHOOK_BODY_LIMIT_BYTES (3u * 1024u * 1024u)

const struct lucy_route lucy_wa_webhook_routes[] = {
    {"GET", "/webhook/whatsapp", get_webhook, 0, 0, NULL},
    {"POST", "/webhook/whatsapp", post_webhook, 0, WEBHOOK_BODY_LIMIT_BYTES, NULL},
};
const size_t lucy_wa_webhook_routes_count =
    sizeof lucy_wa_webhook_routes / sizeof lucy_wa_webhook_routes[0];
