/*
 * whatsapp.h - the WhatsApp plugin's internal interfaces (DESIGN §5, §8).
 *
 * One file per job:
 *   signature.c  X-Hub-Signature-256 check (HMAC-SHA256 over the raw body)
 *   payload.c    jansson parser of Meta's webhook body; text of a message
 *   inbox.c      POST/GET /webhook/whatsapp: verify, parse, ONE store write
 *                (raw body + messages + statuses), reply only after fsync
 *   worker.c     the "inbox-worker" thread: contacts, messages, statuses,
 *                per-sender rate limit (through the kv interface), index
 *                outbox, in order per sender, retry with backoff
 *   alias.c      contact names shared by instances through the kv:
 *                keys, value format, newest-wins merge with the local row
 *   document.c   the one rule for a message's search document: title
 *                (alias, else profile name, else id) and voice-note text
 *   media.c      the "wa-media" thread: Graph API download of voice notes,
 *                sha256 check, transcription through src/asr
 *   contacts.c   GET/PUT /contacts
 *   forget.c     DELETE /messages/{wamid}; a person's and old messages
 *                forgotten (the forget registry of src/people/forget.h)
 *   plugin.c     the struct lucy_plugin: routes, health check, metrics
 *
 * Calls go one way: plugin -> inbox -> worker -> media -> document, and
 * worker, contacts -> alias, document. Handlers get struct lucy_wa as
 * req->arg; the threads are handed what they use when they start.
 *
 * Tables (src/store/schema.c, versions 30-33 and 41): wa_inbox_bodies,
 * wa_messages (wamid UNIQUE), wa_statuses (UNIQUE(id, status)),
 * wa_contacts, wa_outgoing, wa_media. Shared state (rate limits, wamid
 * claims, aliases) goes through src/kv/kv.h only, never a backend.
 *
 * Nothing here is exported outside the plugin except lucy_whatsapp_plugin.
 */
#ifndef LUCY_WHATSAPP_H
#define LUCY_WHATSAPP_H

#include <jansson.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "../../http/http.h"

struct lucy_ctx;

/* The plugin (plugin.c), listed in src/plugins/plugins.c. */
struct lucy_plugin;
extern const struct lucy_plugin lucy_whatsapp_plugin;

/* ---- signature.c --------------------------------------------------------- */

/* Checks header ("sha256=<64 hex>", Meta's X-Hub-Signature-256) against
 * HMAC-SHA256(secret, body[0..len)) computed over the exact bytes received
 * (Meta signs the escaped-unicode bytes it sends; re-serialising breaks
 * it). The comparison is constant-time (CRYPTO_memcmp). Returns 0 when it
 * matches, LUCY_EINVAL when header is NULL or not of that form, LUCY_EPERM
 * when it does not match. Thread-safe. */
int lucy_wa_signature_check(const char *secret, const char *header, const void *body, size_t len);

/* Writes "sha256=<hex>" for body into out (at least 72 bytes). For tests
 * and the benchmark client. Returns 0 or LUCY_EINVAL. */
int lucy_wa_signature_make(const char *secret, const void *body, size_t len, char *out,
                           size_t outlen);

/* ---- payload.c ----------------------------------------------------------- */

/* One messages[] element. Strings point into the payload's JSON tree. */
struct lucy_wa_message {
    const char *wamid;           /* messages[].id */
    const char *sender;          /* contact key: `from` (wa_id), else from_user_id */
    const char *wa_id;           /* phone-number id of the sender, or NULL */
    const char *user_id;         /* business-scoped user id, or NULL */
    const char *type;            /* messages[].type ("unknown" when absent) */
    int known_type;              /* 1 when type is one of DESIGN §8's */
    int64_t timestamp_s;         /* messages[].timestamp, Unix seconds */
    const char *profile_name;    /* contacts[].profile.name of the sender, or NULL */
    const char *phone_number_id; /* metadata.phone_number_id (the business number) */
    char *raw;                   /* compact JSON of the element (owned, malloc) */
};

/* One statuses[] element (a delivery report for a message lucy's owner sent). */
struct lucy_wa_status {
    const char *id;           /* statuses[].id: the outgoing wamid */
    const char *status;       /* sent, delivered, read, played, failed, ... */
    const char *recipient_id; /* wa_id (or user id) of the recipient */
    int64_t timestamp_s;      /* statuses[].timestamp */
    char *raw;                /* compact JSON of the element (owned, malloc) */
};

struct lucy_wa_payload {
    json_t *root;                     /* the parsed body (owns the strings) */
    struct lucy_wa_message *messages; /* every entry[].changes[].value.messages[] */
    size_t n_messages;
    struct lucy_wa_status *statuses; /* every ...value.statuses[] */
    size_t n_statuses;
    size_t n_unknown_types; /* messages whose type DESIGN §8 does not list */
    size_t n_malformed;     /* elements without an id (kept in the raw body only) */
};

/* Parses a webhook body (Meta's "whatsapp_business_account" object) with
 * jansson. Walks every entry[], changes[] and, in each change's value,
 * messages[], statuses[] and contacts[] (profile names are attached to the
 * messages of their wa_id / user_id). Returns 0 and fills out (free with
 * lucy_wa_payload_free, also after an error); LUCY_EINVAL with a reason in
 * err when the body is not JSON, not an object with an `entry` array, or
 * an id (wamid, wa_id, user_id, a status's id or value, phone_number_id)
 * holds a NUL or another control character (the reason names the field's
 * path); LUCY_ENOMEM. Thread-safe (no shared state). */
int lucy_wa_payload_parse(const char *body, size_t len, struct lucy_wa_payload *out, char *err,
                          size_t errlen);
void lucy_wa_payload_free(struct lucy_wa_payload *p);

/* 1 when type is one DESIGN §8 lists (text, audio, image, video, document,
 * sticker, location, contacts, reaction, interactive, button). */
int lucy_wa_type_known(const char *type);

/* The searchable text of one message object (parsed `raw`), by type: text
 * body, captions and file names, location name/address, shared contacts'
 * names, reaction emoji, button and list titles. Audio gives "voice note"
 * (the media code adds the transcript). Returns a malloc'd UTF-8 string
 * (caller frees; "" when there is nothing to index) or NULL on ENOMEM. */
char *lucy_wa_message_text(json_t *msg);

/* The rank of a status for "never go back": sent 1 < delivered 2 < read 3
 * < played 4; failed 5 (terminal); anything else 0 (stored, never
 * overwrites). Source: Meta's status webhook reference (delivered may be
 * skipped when read at once; statuses arrive in any order). */
int lucy_wa_status_rank(const char *status);

/* ---- document.c ---------------------------------------------------------- */

/* The title of contact id's messages in the search index: the local
 * row's user alias, else its profile name, else id. *title is malloc'd
 * (caller frees). Call inside a store read or write with its db. 0,
 * LUCY_ENOMEM or a store error. */
int lucy_wa_contact_title(sqlite3 *db, const char *id, char **title);

/* Queues (or re-queues) the search-index document of message wamid with
 * text, inside a store write: source "whatsapp", id wamid, segment 0,
 * contact = sender key, title = lucy_wa_contact_title() of the sender,
 * time = the payload's timestamp, else the arrival time. Returns 0,
 * LUCY_ENOTFOUND (no such message) or a store error. Writer thread. */
int lucy_wa_index_message(sqlite3 *db, const char *wamid, const char *text);

/* Inside a store write, after the local wa_contacts row of contact id
 * changed its user alias or profile name: re-queues (lucy_outbox_put)
 * every live search document of the contact's messages whose title is not
 * lucy_wa_contact_title() now, keeping each document's text, so the index
 * follows the name and commits with the change. *requeued (may be NULL) =
 * documents re-queued. Cost: one indexed read of the contact's messages;
 * memory for the documents it re-queues. Returns 0, LUCY_ENOMEM or a
 * store error (then the caller's write rolls back). Writer thread. */
int lucy_wa_contact_retitle(sqlite3 *db, const char *id, int64_t *requeued);

/* The text of a voice note that has no transcript yet: "voice note" when
 * it will be downloaded (downloadable = 1), else "voice note (not
 * downloaded)". Static string. Pure. */
const char *lucy_wa_voice_note_text(int downloadable);

/* The text of a transcribed voice note: "voice note: <transcript>", or
 * "voice note (no speech)" when transcript is "". malloc'd (caller frees);
 * NULL on ENOMEM. */
char *lucy_wa_transcript_text(const char *transcript);

/* ---- worker.c ------------------------------------------------------------ */

struct lucy_kv;
struct lucy_wa_worker;
struct lucy_wa_media;

/* Starts the inbox worker ("inbox-worker") on ctx's store. kv (borrowed,
 * may be NULL: local store only) and media (borrowed; kicked when voice
 * notes are queued) must outlive it. NULL on ENOMEM. kick() wakes it after
 * a commit (any thread); stop() joins and frees it (NULL is fine). */
struct lucy_wa_worker *lucy_wa_worker_start(struct lucy_ctx *ctx, struct lucy_kv *kv,
                                            struct lucy_wa_media *media);
void lucy_wa_worker_kick(struct lucy_wa_worker *w);
void lucy_wa_worker_stop(struct lucy_wa_worker *w);

/* Counters the worker keeps for /metrics. */
struct lucy_wa_worker_stats {
    unsigned long long processed;     /* messages stored and queued for indexing */
    unsigned long long statuses;      /* statuses applied */
    unsigned long long rate_limited;  /* messages flagged over LUCY_RATE_LIMIT */
    unsigned long long retries;       /* items left pending after a failure */
    unsigned long long unknown_types; /* processed messages of a type DESIGN §8 does not list */
};
void lucy_wa_worker_stats(struct lucy_wa_worker *w, struct lucy_wa_worker_stats *out);

/* ---- alias.c ------------------------------------------------------------- */

/* Room for any kv key the plugin builds from an id it accepts. */
#define LUCY_WA_KEY_MAX 320

/* The user's alias of one contact as one side knows it: the local store's
 * row, or the copy shared through the kv. */
struct lucy_wa_alias {
    int known;         /* 1 = this side has a record (possibly a cleared alias) */
    const char *alias; /* the alias; NULL = none or cleared (not owned) */
    int64_t set_at_ms; /* when the user set or cleared it, wall ms; 0 = unknown */
};

/* The kv keys of a contact's user alias ("wa:user_alias:<id>") and profile
 * name ("wa:profile_name:<id>"), written into buf. 0, or LUCY_EINVAL when
 * buf (len bytes) is too small. */
int lucy_wa_alias_key(char *buf, size_t len, const char *id);
int lucy_wa_profile_key(char *buf, size_t len, const char *id);

/* The newer of the two records: shared when local is unknown, or when
 * shared is known and was set strictly later; otherwise local (ties go to
 * the local store, the source of truth). Either may be NULL. Pure. */
const struct lucy_wa_alias *lucy_wa_alias_pick(const struct lucy_wa_alias *local,
                                               const struct lucy_wa_alias *shared);

/* The kv value of an alias (NULL = cleared): compact JSON
 * {"alias":...,"set_at_ms":N}, malloc'd (caller frees); NULL on ENOMEM. */
char *lucy_wa_alias_encode(const char *alias, int64_t set_at_ms);

/* Parses a kv value (len bytes) into *out, known = 1. A value that is not
 * that JSON is taken as a bare alias set at time 0. out->alias points into
 * *owned (caller frees; may be NULL). 0 or LUCY_ENOMEM. */
int lucy_wa_alias_decode(const char *value, size_t len, struct lucy_wa_alias *out, char **owned);

/* What the shared kv knows about one contact. */
struct lucy_wa_shared_names {
    struct lucy_wa_alias alias; /* known = 0 when the kv has no alias record */
    char *profile_name;         /* latest profile name, or NULL (owned) */
    char *alias_buf;            /* owns alias.alias */
};

/* Looks up the shared alias (and, when profiles is 1, the profile name) of
 * n contacts in ONE lucy_kv_get_many, waiting at most timeout_ms (<= 0 =
 * the kv's default). Returns 0 with out[0..n) filled (free with
 * lucy_wa_shared_names_free), or the kv's code (LUCY_EUNAVAIL when kv is
 * NULL) with out[] all unknown, in which case callers use the local store
 * alone. Thread-safe. */
int lucy_wa_shared_names_get(struct lucy_kv *kv, const char *const *ids, size_t n, int profiles,
                             struct lucy_wa_shared_names *out, int timeout_ms);
void lucy_wa_shared_names_free(struct lucy_wa_shared_names *s, size_t n);

/* Publishes the user's alias of contact id (NULL = cleared), set at
 * set_at_ms, for the other instances: written to the kv, or queued in the
 * local store and replayed when the kv refuses (lucy_kv_set_or_queue).
 * Returns 0, LUCY_EUNAVAIL when kv is NULL, or the local store's error when
 * it could not even be queued. */
int lucy_wa_alias_publish(struct lucy_kv *kv, const char *id, const char *alias, int64_t set_at_ms);

/* ---- media.c ------------------------------------------------------------- */

/* Starts the media thread ("wa-media"): downloads pending voice notes from
 * the Graph API (when WHATSAPP_ACCESS_TOKEN is set) and transcribes them.
 * NULL on ENOMEM. kick() wakes it (any thread); stop() joins and frees it
 * (NULL is fine). */
struct lucy_wa_media *lucy_wa_media_start(struct lucy_ctx *ctx);
void lucy_wa_media_kick(struct lucy_wa_media *m);
void lucy_wa_media_stop(struct lucy_wa_media *m);

/* Inside a store write: records the audio of message wamid (parsed object
 * msg) in wa_media, as `pending` with a token or `not_downloaded` without.
 * Sets *text to the text to index now (lucy_wa_voice_note_text, static).
 * 0 or store error. */
int lucy_wa_media_enqueue(sqlite3 *db, const char *wamid, json_t *msg, int have_token,
                          const char **text);

struct lucy_wa_media_stats {
    unsigned long long transcribed; /* voice notes transcribed */
    unsigned long long failed;      /* permanently failed (reason stored) */
    unsigned long long retries;     /* attempts left pending */
};
void lucy_wa_media_stats(struct lucy_wa_media *m, struct lucy_wa_media_stats *out);

/* ---- contacts.c ---------------------------------------------------------- */

/* The contact routes; add them with the plugin state as arg. */
extern const struct lucy_route lucy_wa_contact_routes[];
extern const size_t lucy_wa_contact_routes_count;

/* ---- forget.c -------------------------------------------------------------
 * DELETE /messages/{wamid} (req->arg: struct lucy_wa) and the plugin's row
 * of the forget registry (src/people/forget.h): a message's row, voice
 * note, search document and raw body go; its wamid is tombstoned. */
struct lucy_wa;
extern const struct lucy_route lucy_wa_forget_routes[];
extern const size_t lucy_wa_forget_routes_count;

/* Adds the plugin's row to ctx->forget (none: 0). Init only. 0 or
 * LUCY_ENOMEM. */
int lucy_wa_forget_register(struct lucy_wa *wa);

/* ---- inbox.c ------------------------------------------------------------- */

/* Why a webhook POST was refused, for /metrics. */
enum lucy_wa_reject {
    LUCY_WA_REJECT_SIGNATURE_MISSING,
    LUCY_WA_REJECT_SIGNATURE_INVALID,
    LUCY_WA_REJECT_BAD_REQUEST,
    LUCY_WA_REJECT_NOT_CONFIGURED,
    LUCY_WA_REJECT_DISK_FULL,
    LUCY_WA_REJECT_STORE_UNAVAILABLE,
    LUCY_WA_REJECT_COUNT
};

/* Plugin state, every route's arg (req->arg): read-only after init,
 * except the atomic counters and worker/media (set by start, cleared by
 * stop; read with __atomic loads). */
struct lucy_wa {
    struct lucy_ctx *ctx;          /* the daemon */
    int unsigned_ok;               /* no app secret and loopback: accept unsigned */
    struct lucy_wa_worker *worker; /* NULL until start */
    struct lucy_wa_media *media;   /* NULL until start */
    struct lucy_kv *kv;            /* ctx->kv, borrowed; NULL = local store only */
    unsigned long long accepted;   /* new messages + statuses committed */
    unsigned long long duplicates; /* already stored, acknowledged again */
    unsigned long long rejected[LUCY_WA_REJECT_COUNT]; /* by reason */
    unsigned long long bodies;                         /* POSTs committed */
};

const char *lucy_wa_reject_name(enum lucy_wa_reject r);

/* The webhook routes; add them with the plugin state as arg. */
extern const struct lucy_route lucy_wa_webhook_routes[];
extern const size_t lucy_wa_webhook_routes_count;

#endif
