/*
 * media.c - voice notes: Graph API download, sha256 check, transcription
 * (DESIGN §8), on the "wa-media" thread.
 *
 * The inbox worker records every audio message in wa_media (inside its
 * store write, lucy_wa_media_enqueue): `pending` when WHATSAPP_ACCESS_TOKEN
 * is set, else `not_downloaded` and indexed as "voice note (not
 * downloaded)". This thread then takes due rows one at a time:
 *
 *   pending     GET WHATSAPP_GRAPH_URL/<media-id> with the bearer token ->
 *               {"url","mime_type","sha256","file_size","id"} (Meta for
 *               Developers, "Cloud API: Media"); lucy_disk_admit() the
 *               size; GET url with the same token into a mkstemp file in
 *               DATA_DIR/tmp while hashing (OpenSSL EVP SHA-256); compare
 *               with the sha256 Meta gave (hex or base64); fsync, rename to
 *               DATA_DIR/media/<sha256>.<ext>, fsync the directory; then the
 *               row becomes `downloaded` (durable before any transcription).
 *   downloaded  decode (lucy_audio_decode_fd) and transcribe (lucy_asr_*,
 *               the engine LUCY_ASR_ENGINE selects, loaded on the first
 *               voice note, unloaded after LUCY_ASR_IDLE_UNLOAD_S idle);
 *               the transcript is stored and the message re-indexed as
 *               "voice note: <transcript>" (same document id, so the entry
 *               is replaced). State `transcribed` or `no_speech`.
 *
 * Failures: 401/403 from Meta (token), 404 (media id expired), a wrong
 * sha256 or undecodable audio are permanent: state `failed` with
 * error_type and reason; the message itself stays stored and indexed.
 * Anything else (network, 5xx, disk critical, ASR engine unavailable) stays
 * pending with backoff (30 s doubling to 1 h). No secret and no media URL is
 * ever logged.
 *
 * HTTP goes through src/http/client.h: Meta's JSON into the reply buffer
 * (64 KiB cap), the audio streamed into the temp file by a sink that
 * hashes as it writes (64 MiB cap); 10 s to connect, 300 s per call, up
 * to 3 redirects, http(s) only. This file calls only document.c (the
 * voice note's text and its search document); the inbox worker calls in.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../asr/asr.h"
#include "../../asr/lifecycle.h"
#include "../../clock.h"
#include "../../disk/disk.h"
#include "../../error.h"
#include "../../http/client.h"
#include "../../log.h"
#include "../../lucy.h"
#include "../../store/row.h"
#include "../../store/store.h"
#include "../../thread.h"
#include "whatsapp.h"

#define RETRY_BASE_MS   (30 * 1000)
#define RETRY_MAX_MS    (60 * 60 * 1000)
#define MAX_ATTEMPTS    20
#define MAX_MEDIA_BYTES (64ll * 1024 * 1024) /* Meta: audio up to 16 MB */
#define MAX_META_BYTES  (64 * 1024)
#define POLL_MS         5000
#define STORE_RETRY_MS  2000
#define CONNECT_MS      (10 * 1000)
#define TRANSFER_MS     (300 * 1000)

struct lucy_wa_media {
    struct lucy_thread thread;        /* "wa-media" */
    struct lucy_ctx *ctx;             /* the daemon (not owned) */
    char media_dir[1100];             /* DATA_DIR/media */
    struct lucy_wa_media_stats stats; /* __atomic counters: read by /metrics */
    struct lucy_asr_options asr_opt;  /* from the config */
    struct lucy_asr_instance asr;     /* loaded lazily, unloaded when idle; thread-owned */
};

/* ---- enqueue (inbox worker, inside its store write) ----------------------- */

static const char sql_enqueue[] =
    "INSERT INTO wa_media (wamid, media_id, mime_type, sha256, state, error_type, "
    "created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) "
    "ON CONFLICT (wamid) DO NOTHING";

int lucy_wa_media_enqueue(sqlite3 *db, const char *wamid, json_t *msg, int have_token,
                          const char **text)
{
    json_t *audio = json_object_get(msg, "audio");
    const char *media_id = json_string_value(json_object_get(audio, "id"));
    int downloadable = have_token && media_id;
    *text = lucy_wa_voice_note_text(downloadable);
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_enqueue, &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, wamid);
    lucy_row_bind_text(st, 2, media_id);
    lucy_row_bind_text(st, 3, json_string_value(json_object_get(audio, "mime_type")));
    lucy_row_bind_text(st, 4, json_string_value(json_object_get(audio, "sha256")));
    lucy_row_bind_text(st, 5, downloadable ? "pending" : "not_downloaded");
    lucy_row_bind_text(st, 6, !media_id ? "no_media_id" : !have_token ? "not_configured" : NULL);
    sqlite3_bind_int64(st, 7, lucy_wall_ms());
    return lucy_row_step_done(st);
}

/* ---- one due row ---------------------------------------------------------- */

struct job {
    char wamid[256];
    char media_id[128];
    char mime_type[128];
    char sha256_hint[128]; /* from the webhook, used when Meta's answer has none */
    char state[32];
    char path[1200];
    int attempts;
    int found;
    int64_t now_ms;
};

static const char sql_due[] =
    "SELECT wamid, media_id, mime_type, sha256, state, attempts, path FROM wa_media "
    "WHERE state IN ('pending','downloaded') AND next_attempt_ms <= ?1 "
    "ORDER BY next_attempt_ms, created_at_ms LIMIT 1";

static int read_due(sqlite3 *db, void *arg)
{
    struct job *j = arg;
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_due, &st);
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, j->now_ms);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        j->found = 1;
        lucy_row_copy(st, 0, j->wamid, sizeof j->wamid);
        lucy_row_copy(st, 1, j->media_id, sizeof j->media_id);
        lucy_row_copy(st, 2, j->mime_type, sizeof j->mime_type);
        lucy_row_copy(st, 3, j->sha256_hint, sizeof j->sha256_hint);
        lucy_row_copy(st, 4, j->state, sizeof j->state);
        j->attempts = sqlite3_column_int(st, 5);
        lucy_row_copy(st, 6, j->path, sizeof j->path);
    }
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : lucy_store_err(rc);
}

/* What happened to a job, written back in one store write. */
struct outcome {
    struct job *job;
    const char *state;      /* new state */
    const char *error_type; /* NULL on success */
    char error[512];        /* reason (no secrets, no URLs) */
    int retry;              /* 1: stay in the current state with backoff */
    char path[1200];        /* downloaded file */
    int64_t size_bytes;
    const char *transcript; /* transcribed text */
    const char *engine;
};

static int64_t backoff_ms(int attempts)
{
    int64_t ms = RETRY_BASE_MS;
    for (int i = 0; i < attempts && ms < RETRY_MAX_MS; i++)
        ms *= 2;
    return ms < RETRY_MAX_MS ? ms : RETRY_MAX_MS;
}

static const char sql_outcome[] =
    "UPDATE wa_media SET state = ?1, attempts = ?2, next_attempt_ms = ?3, error_type = ?4, "
    "last_error = ?5, path = coalesce(?6, path), size_bytes = coalesce(?7, size_bytes), "
    "transcript = coalesce(?8, transcript), engine = coalesce(?9, engine), "
    "updated_at_ms = ?10 WHERE wamid = ?11";

static int write_outcome(sqlite3 *db, void *arg)
{
    struct outcome *o = arg;
    struct job *j = o->job;
    const char *state = o->state;
    int64_t next_ms = 0;
    int attempts = j->attempts;
    if (o->retry) {
        attempts++;
        state = attempts >= MAX_ATTEMPTS ? "failed" : j->state;
        next_ms = j->now_ms + backoff_ms(attempts - 1);
    }
    sqlite3_stmt *st;
    int rc = lucy_store_stmt(db, sql_outcome, &st);
    if (rc)
        return rc;
    lucy_row_bind_text(st, 1, state);
    sqlite3_bind_int(st, 2, attempts);
    sqlite3_bind_int64(st, 3, next_ms);
    lucy_row_bind_text(st, 4, o->error_type);
    lucy_row_bind_text(st, 5, o->error_type ? o->error : NULL);
    lucy_row_bind_text(st, 6, o->path[0] ? o->path : NULL);
    if (o->size_bytes)
        sqlite3_bind_int64(st, 7, o->size_bytes);
    lucy_row_bind_text(st, 8, o->transcript);
    lucy_row_bind_text(st, 9, o->engine);
    sqlite3_bind_int64(st, 10, lucy_wall_ms());
    lucy_row_bind_text(st, 11, j->wamid);
    rc = lucy_row_step_done(st);
    if (rc || !o->transcript)
        return rc;
    char *text = lucy_wa_transcript_text(o->transcript);
    if (!text)
        return LUCY_ENOMEM;
    rc = lucy_wa_index_message(db, j->wamid, text);
    free(text);
    return rc;
}

static void fail(struct outcome *o, const char *type, int retry, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fail(struct outcome *o, const char *type, int retry, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->error, sizeof o->error, fmt, ap);
    va_end(ap);
    o->error_type = type;
    o->retry = retry;
    o->state = "failed";
}

/* ---- HTTP ---------------------------------------------------------------- */

/* The voice note on its way to the temp file: written and hashed as the
 * bytes arrive, never more than MAX_MEDIA_BYTES. */
struct media_file {
    int fd;            /* the temp file */
    EVP_MD_CTX *sha;   /* hashing what goes to fd */
    long long written; /* bytes to fd */
    int write_error;   /* errno of a failed write */
};

static int media_sink(void *arg, const char *data, size_t len)
{
    struct media_file *f = arg;
    if (f->written + (long long)len > MAX_MEDIA_BYTES)
        return -1;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(f->fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            f->write_error = w < 0 ? errno : EIO;
            return -1;
        }
        off += (size_t)w;
    }
    EVP_DigestUpdate(f->sha, data, len);
    f->written += (long long)len;
    return 0;
}

/* GET url with the bearer token: into call->reply, or into file when it
 * is not NULL. Returns the HTTP status, or -1 with the reason in
 * call->error. Free call with lucy_http_call_free(). */
static long graph_get(const char *url, const char *token, struct media_file *file,
                      struct lucy_http_call *call)
{
    *call = (struct lucy_http_call){
        .url = url,
        .bearer = token,
        .timeout_ms = TRANSFER_MS,
        .connect_timeout_ms = CONNECT_MS,
        .follow_redirects = 1,
        .reply_cap = MAX_META_BYTES,
        .sink = file ? media_sink : NULL,
        .sink_arg = file,
    };
    return lucy_http_client_perform(NULL, call) == 0 ? call->status : -1;
}

/* Maps an HTTP status from Meta onto the outcome. Returns 1 if it failed. */
static int http_failed(struct outcome *o, long status, const char *what, const char *cerr)
{
    if (status == 200)
        return 0;
    if (status < 0)
        fail(o, "graph_unavailable", 1, "%s: %s; will retry", what, cerr);
    else if (status == 401 || status == 403)
        fail(o, "graph_unauthorized", 0,
             "%s: HTTP %ld from the Graph API: WHATSAPP_ACCESS_TOKEN is wrong, expired or lacks "
             "whatsapp_business_messaging; set a valid token",
             what, status);
    else if (status == 404)
        fail(o, "media_not_found", 0,
             "%s: HTTP 404 from the Graph API: the media id is unknown or expired (Meta keeps "
             "media for 7 days)",
             what);
    else
        fail(o, "graph_unavailable", 1, "%s: HTTP %ld from the Graph API; will retry", what,
             status);
    return 1;
}

static const char *extension(const char *mime)
{
    static const struct {
        const char *prefix, *ext;
    } exts[] = {
        {"audio/ogg", "ogg"}, {"audio/opus", "opus"}, {"audio/mpeg", "mp3"},
        {"audio/mp4", "m4a"}, {"audio/aac", "aac"},   {"audio/amr", "amr"},
    };
    for (size_t i = 0; mime && i < sizeof exts / sizeof exts[0]; i++)
        if (strncasecmp(mime, exts[i].prefix, strlen(exts[i].prefix)) == 0)
            return exts[i].ext;
    return "bin";
}

/* 1 when expected (hex, any case, or base64) names digest. */
static int sha256_matches(const char *expected, const unsigned char digest[32])
{
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    unsigned char b64[48];
    EVP_EncodeBlock(b64, digest, 32);
    return strcasecmp(expected, hex) == 0 || strcmp(expected, (const char *)b64) == 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void download(struct lucy_wa_media *m, struct outcome *o)
{
    const struct lucy_config *cfg = m->ctx->cfg;
    struct job *j = o->job;
    char url[2048];
    snprintf(url, sizeof url, "%s/%s", cfg->whatsapp_graph_url, j->media_id);
    struct lucy_http_call call;
    long status = graph_get(url, cfg->whatsapp_access_token, NULL, &call);
    json_t *info = status == 200 && call.reply ? json_loads(call.reply, 0, NULL) : NULL;
    int failed = http_failed(o, status, "media lookup", call.error);
    lucy_http_call_free(&call);
    if (failed) {
        json_decref(info);
        return;
    }
    const char *media_url = json_string_value(json_object_get(info, "url"));
    const char *sha = json_string_value(json_object_get(info, "sha256"));
    json_int_t size = json_integer_value(json_object_get(info, "file_size"));
    if (!media_url) {
        fail(o, "graph_unavailable", 1, "media lookup: the Graph API answer has no url");
        json_decref(info);
        return;
    }
    snprintf(url, sizeof url, "%s", media_url);
    char expected[128];
    snprintf(expected, sizeof expected, "%s", sha && *sha ? sha : j->sha256_hint);
    json_decref(info);

    if (lucy_disk_admit(m->ctx->disk, size > 0 ? (uint64_t)size : 16u * 1024 * 1024) != 0) {
        fail(o, "disk_full", 1, "not enough free disk space for the voice note; will retry");
        return;
    }
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s/wa-media-XXXXXX", m->ctx->tmp_dir);
    struct media_file file = {.fd = mkostemp(tmp, O_CLOEXEC), .sha = EVP_MD_CTX_new()};
    if (file.fd < 0 || !file.sha || !EVP_DigestInit_ex(file.sha, EVP_sha256(), NULL)) {
        fail(o, "io_error", 1, "cannot create a temp file in %s: %s", m->ctx->tmp_dir,
             strerror(errno));
        if (file.fd >= 0)
            close(file.fd), unlink(tmp);
        EVP_MD_CTX_free(file.sha);
        return;
    }
    status = graph_get(url, cfg->whatsapp_access_token, &file, &call);
    unsigned char digest[32];
    unsigned int dlen = 0;
    EVP_DigestFinal_ex(file.sha, digest, &dlen);
    EVP_MD_CTX_free(file.sha);
    int keep = 0;
    if (file.write_error) {
        fail(o, file.write_error == ENOSPC ? "disk_full" : "io_error", 1,
             "writing the voice note failed: %s; will retry", strerror(file.write_error));
    } else if (http_failed(o, status, "media download", call.error)) {
        /* outcome set */
    } else if (expected[0] && !sha256_matches(expected, digest)) {
        fail(o, "sha256_mismatch", 0,
             "the downloaded media (%lld bytes) does not match the sha256 Meta gave; it was "
             "discarded",
             file.written);
    } else if (fsync(file.fd) != 0) {
        fail(o, "io_error", 1, "fsync of the voice note failed: %s; will retry", strerror(errno));
    } else {
        char hex[65];
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", digest[i]);
        snprintf(o->path, sizeof o->path, "%s/%s.%s", m->media_dir, hex, extension(j->mime_type));
        if (rename(tmp, o->path) != 0 || fsync_dir(m->media_dir) != 0) {
            fail(o, "io_error", 1, "cannot store the voice note in %s: %s; will retry",
                 m->media_dir, strerror(errno));
            o->path[0] = '\0';
        } else {
            keep = 1;
            o->state = "downloaded";
            o->size_bytes = file.written;
        }
    }
    lucy_http_call_free(&call);
    close(file.fd);
    if (!keep)
        unlink(tmp);
}

/* ---- transcription -------------------------------------------------------- */

static void transcribe(struct lucy_wa_media *m, struct outcome *o, struct lucy_transcript *t)
{
    char err[512] = "";
    int fd = open(o->job->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fail(o, "io_error", 1, "cannot open the stored voice note: %s", strerror(errno));
        return;
    }
    struct lucy_pcm pcm = {0};
    int rc = lucy_audio_decode_fd(fd, o->job->path, &pcm, err, sizeof err);
    close(fd);
    if (rc) {
        fail(o, rc == LUCY_ECORRUPT ? "corrupt" : "io_error", rc != LUCY_ECORRUPT,
             "cannot decode the voice note: %s", err);
        lucy_pcm_free(&pcm);
        return;
    }
    if (lucy_asr_instance_load(&m->asr, err, sizeof err) != 0) {
        fail(o, "asr_unavailable", 1, "speech recognition is not available: %s", err);
        lucy_pcm_free(&pcm);
        return;
    }
    rc = lucy_asr_instance_transcribe(&m->asr, &pcm, t, err, sizeof err);
    lucy_pcm_free(&pcm);
    if (rc) {
        fail(o, "asr_failed", 1, "transcription failed: %s", err);
        return;
    }
    o->transcript = t->text ? t->text : "";
    o->engine = t->engine;
    o->state = *o->transcript ? "transcribed" : "no_speech";
}

/* ---- the thread ----------------------------------------------------------- */

/* Handles one due row. Returns 1 if there was one, 0 if idle, <0 on a
 * store error. */
static int media_once(struct lucy_wa_media *m)
{
    const struct lucy_config *cfg = m->ctx->cfg;
    struct job j = {.now_ms = lucy_wall_ms()};
    int rc = lucy_store_read(m->ctx->store, read_due, &j);
    if (rc || !j.found)
        return rc;
    struct outcome o = {.job = &j};
    struct lucy_transcript t = {0};
    if (lucy_disk_critical(m->ctx->disk)) {
        fail(&o, "disk_full", 1, "disk is critical: voice notes wait until space returns");
        o.retry = 1;
        j.attempts--; /* waiting for space is not a failed attempt */
    } else if (strcmp(j.state, "pending") == 0) {
        if (!cfg->whatsapp_access_token || !*cfg->whatsapp_access_token) {
            o.state = "not_downloaded";
            o.error_type = "not_configured";
            snprintf(o.error, sizeof o.error, "WHATSAPP_ACCESS_TOKEN is not set");
        } else {
            download(m, &o);
        }
    } else {
        transcribe(m, &o, &t);
    }
    if (o.error_type && !o.retry)
        lucy_log(LUCY_LOG_WARNING, "voice note failed", "{s:s,s:s,s:s}", "wamid", j.wamid,
                 "error_type", o.error_type, "error", o.error);
    else if (o.error_type)
        lucy_log(LUCY_LOG_INFO, "voice note will be retried", "{s:s,s:s,s:s}", "wamid", j.wamid,
                 "error_type", o.error_type, "error", o.error);
    rc = lucy_store_write(m->ctx->store, write_outcome, &o, 0);
    if (rc && o.path[0] && strcmp(j.state, "pending") == 0)
        unlink(o.path); /* not recorded: download again next time */
    unsigned long long *counter = NULL;
    if (rc == 0 && o.transcript)
        counter = &m->stats.transcribed;
    else if (rc == 0 && o.error_type && (!o.retry || j.attempts + 1 >= MAX_ATTEMPTS))
        counter = &m->stats.failed;
    else if (rc == 0 && o.retry)
        counter = &m->stats.retries;
    if (counter)
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
    lucy_transcript_free(&t);
    return rc ? rc : 1;
}

static void media_main(void *arg)
{
    struct lucy_wa_media *m = arg;
    for (;;) {
        int rc = media_once(m);
        if (rc < 0)
            lucy_log(LUCY_LOG_WARNING, "voice note worker cannot use the store; retrying", "{s:s}",
                     "error", lucy_strerror(rc));
        if (rc == 0)
            lucy_asr_instance_unload_if_idle(&m->asr);
        if (lucy_thread_nap(&m->thread, rc == 1 ? 0 : rc < 0 ? STORE_RETRY_MS : POLL_MS))
            break;
    }
    lucy_asr_instance_unload(&m->asr);
}

struct lucy_wa_media *lucy_wa_media_start(struct lucy_ctx *ctx)
{
    struct lucy_wa_media *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->ctx = ctx;
    snprintf(m->media_dir, sizeof m->media_dir, "%s/media", ctx->cfg->data_dir);
    if (mkdir(m->media_dir, 0700) != 0 && errno != EEXIST)
        lucy_log(LUCY_LOG_WARNING, "cannot create the media dir; voice notes will retry",
                 "{s:s,s:s}", "dir", m->media_dir, "error", strerror(errno));
    m->asr_opt = (struct lucy_asr_options){.engine = ctx->cfg->asr_engine,
                                           .whisper_model = ctx->cfg->whisper_model,
                                           .url = ctx->cfg->asr_url,
                                           .threads = ctx->cfg->asr_threads};
    lucy_asr_instance_init(&m->asr, &m->asr_opt, ctx->cfg->asr_idle_unload_s);
    m->thread = (struct lucy_thread){.name = "wa-media", .main = media_main, .arg = m};
    if (lucy_thread_start(&m->thread) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

void lucy_wa_media_kick(struct lucy_wa_media *m)
{
    lucy_thread_kick(&m->thread);
}

void lucy_wa_media_stop(struct lucy_wa_media *m)
{
    if (!m)
        return;
    lucy_thread_stop(&m->thread);
    free(m);
}

void lucy_wa_media_stats(struct lucy_wa_media *m, struct lucy_wa_media_stats *out)
{
    out->transcribed = __atomic_load_n(&m->stats.transcribed, __ATOMIC_RELAXED);
    out->failed = __atomic_load_n(&m->stats.failed, __ATOMIC_RELAXED);
    out->retries = __atomic_load_n(&m->stats.retries, __ATOMIC_RELAXED);
}
