/*
 * config.c - the option table and its parsers.
 *
 * Each row of lucy_options[] is one option of DESIGN §4: its name, flag,
 * type, default, bounds and whether it is secret. Parsing is by type, in
 * one function per type (type_parsers[]), so adding an option is adding a
 * row and a field in struct lucy_config.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "asr/asr.h"
#include "config.h"
#include "error.h"
#include "http/libcurl.h"
#include "kv/kv.h"
#include "people/phone.h"
#include "plugins/call_recordings/callmeta.h"

/* clang-format off */
#define OFF(field) offsetof(struct lucy_config, field)
#define INT_OPT(n, fl, def, lo, hi, field, h) \
    {n, fl, LUCY_OPT_INT, def, lo, hi, NULL, 0, 0, OFF(field), h}
#define STR_OPT(n, fl, def, secret, append, field, h) \
    {n, fl, LUCY_OPT_STRING, def, 0, 0, NULL, secret, append, OFF(field), h}
/* clang-format on */

static const char *const log_levels[] = {"debug", "info", "warning", "error", NULL};
static const char *const asr_engines[] = {"auto", "pocketsphinx", "whisper", "http", NULL};
static const char *const on_error_modes[] = {"allow", "deny", NULL};
static const char *const http_schemes[] = {"http", "https", NULL};

const struct lucy_option lucy_options[] = {
    {"LUCY_LISTEN", "--listen", LUCY_OPT_LISTEN, "127.0.0.1:8765", 0, 0, NULL, 0, 0, OFF(listen),
     "HTTP listen address host:port (port 0 = any free port)"},
    STR_OPT("LUCY_DATA_DIR", "--data", "./data", 0, 0, data_dir,
            "SQLite files, temp copies, reserve file"),
    STR_OPT("LUCY_RECORDINGS_DIRS", "--recordings", NULL, 0, 1, recordings_dirs,
            "colon-separated folders to scan"),
    INT_OPT("LUCY_SCAN_INTERVAL_S", NULL, "600", 1, 604800, scan_interval_s,
            "periodic full rescan, seconds"),
    INT_OPT("LUCY_SCAN_SETTLE_S", NULL, "30", 0, 86400, scan_settle_s,
            "a file modified more recently is 'changing'"),
    {"LUCY_FOLLOW_SYMLINKS", NULL, LUCY_OPT_BOOL, "0", 0, 1, NULL, 0, 0, OFF(follow_symlinks),
     "follow directory symlinks, with loop detection"},
    STR_OPT("LUCY_API_TOKEN", NULL, NULL, 1, 0, api_token,
            "bearer token for the API; required on a non-loopback address"),
    {"LUCY_LOG_LEVEL", NULL, LUCY_OPT_ENUM, "info", 0, 0, log_levels, 0, 0, OFF(log_level),
     "debug, info, warning, error"},
    INT_OPT("LUCY_DISK_WARN_PCT", NULL, "10", 0, 100, disk_warn_pct, "free percent below: warn"),
    INT_OPT("LUCY_DISK_WARN_MB", NULL, "1024", 0, 1048576, disk_warn_mb, "free MiB below: warn"),
    INT_OPT("LUCY_DISK_CRITICAL_PCT", NULL, "5", 0, 100, disk_critical_pct,
            "free percent below: critical"),
    INT_OPT("LUCY_DISK_CRITICAL_MB", NULL, "256", 0, 1048576, disk_critical_mb,
            "free MiB below: critical"),
    INT_OPT("LUCY_DISK_RESERVE_MB", NULL, "64", 0, 65536, disk_reserve_mb,
            "reserve (ballast) file size in MiB; 0 disables"),
    STR_OPT("LUCY_DISK_PATHS", NULL, NULL, 0, 0, disk_paths,
            "extra colon-separated paths to watch"),
    INT_OPT("LUCY_DISK_INTERVAL_MS", NULL, "2000", 100, 600000, disk_interval_ms,
            "how often free space is measured"),
    INT_OPT("LUCY_HTTP_THREADS", NULL, "8", 1, 256, http_threads, "HTTP server threads"),
    STR_OPT("LUCY_BACKUP_DIR", NULL, NULL, 0, 0, backup_dir,
            "scheduled backups into this folder; unset = none"),
    INT_OPT("LUCY_BACKUP_INTERVAL_H", NULL, "24", 1, 8760, backup_interval_h,
            "hours between scheduled backups"),
    INT_OPT("LUCY_BACKUP_KEEP", NULL, "7", 1, 10000, backup_keep,
            "scheduled backups kept; older lucy-*.db in LUCY_BACKUP_DIR are deleted"),
    INT_OPT("LUCY_RETENTION_DAYS", NULL, "0", 0, 36500, retention_days,
            "forget calls and messages older than this many days (hourly); 0 = keep forever"),
    INT_OPT("LUCY_STORE_CHECK_INTERVAL_S", NULL, "3600", 0, 604800, store_check_interval_s,
            "PRAGMA quick_check of the store every this many seconds; 0 = only at start"),
    INT_OPT("LUCY_HTTP_BODY_BUDGET_MB", NULL, "64", 4, 4096, http_body_budget_mb,
            "request bodies held in memory at once, all clients; past it: 503"),
    INT_OPT("LUCY_HTTP_REQUEST_TIMEOUT_S", NULL, "30", 1, 3600, http_request_timeout_s,
            "a request's headers and body must arrive within this many seconds"),
    {"LUCY_ASR_ENGINE", NULL, LUCY_OPT_ENUM, "auto", 0, 0, asr_engines, 0, 0, OFF(asr_engine),
     "auto, pocketsphinx, whisper, http"},
    STR_OPT("LUCY_WHISPER_MODEL", NULL, NULL, 0, 0, whisper_model, "path to a ggml whisper model"),
    {"LUCY_ASR_URL", NULL, LUCY_OPT_URL, NULL, 0, 0, http_schemes, 0, 0, OFF(asr_url),
     "OpenAI-compatible transcription endpoint"},
    INT_OPT("LUCY_ASR_THREADS", NULL, "0", 0, 256, asr_threads,
            "threads for the ASR engine; 0 = cores"),
    INT_OPT("LUCY_ASR_WORKERS", NULL, "1", 1, 64, asr_workers, "concurrent transcription jobs"),
    {"LUCY_CALL_CHANNELS", "--channels", LUCY_OPT_ENUM, "me,them", 0, 0, lucy_asr_channels_names, 0,
     0, OFF(call_channels),
     "who is on a stereo call's left,right channel: me,them (BCR), them,me, or mix (mono)"},
    INT_OPT("LUCY_ASR_CHUNK_S", NULL, "30", 5, 600, asr_chunk_s,
            "longest stretch of audio recognised at once; recordings are cut at pauses"),
    INT_OPT("LUCY_ASR_IDLE_UNLOAD_S", NULL, "300", 0, 604800, asr_idle_unload_s,
            "unload the recogniser's model after this many seconds without work; 0 = never"),
    INT_OPT("LUCY_JOB_RETRY_BASE_S", NULL, "30", 1, 3600, job_retry_base_s,
            "first retry delay of a locked recording; doubles up to 1 h"),
    STR_OPT("WHATSAPP_VERIFY_TOKEN", NULL, NULL, 1, 0, whatsapp_verify_token,
            "token for the webhook verification handshake"),
    STR_OPT("WHATSAPP_APP_SECRET", NULL, NULL, 1, 0, whatsapp_app_secret,
            "HMAC key for X-Hub-Signature-256"),
    STR_OPT("WHATSAPP_ACCESS_TOKEN", NULL, NULL, 1, 0, whatsapp_access_token,
            "Graph API token for voice note download"),
    {"WHATSAPP_GRAPH_URL", NULL, LUCY_OPT_URL, "https://graph.facebook.com/v24.0", 0, 0,
     http_schemes, 0, 0, OFF(whatsapp_graph_url), "Graph API base URL"},
    {"LUCY_RATE_LIMIT", NULL, LUCY_OPT_RATE, "60/min", 0, 0, NULL, 0, 0, OFF(rate_limit),
     "per client (bearer token, else address) on /v1/*, /ask, /mcp; per sender for WhatsApp "
     "message processing"},
    {"REDIS_URL", NULL, LUCY_OPT_REDIS_URL, NULL, 0, 0, NULL, 1, 0, OFF(redis_url),
     "redis://[[user]:password@]host[:port][/db]; unset = embedded SQLite kv"},
    INT_OPT("LUCY_REDIS_TIMEOUT_MS", NULL, "500", 10, 60000, redis_timeout_ms,
            "Redis connect and per-command timeout, ms"),
    INT_OPT("LUCY_REDIS_POOL_SIZE", NULL, "4", 1, 64, redis_pool_size, "Redis connections at most"),
    {"LUCY_REDIS_AUTOHEAL", NULL, LUCY_OPT_BOOL, "0", 0, 1, NULL, 0, 0, OFF(redis_autoheal),
     "on MISCONF from a failed save, set stop-writes-on-bgsave-error no until a save succeeds"},
    {"LUCY_RATE_LIMIT_ON_ERROR", NULL, LUCY_OPT_ENUM, "allow", 0, 0, on_error_modes, 0, 0,
     OFF(rate_limit_on_error), "rate limiter decision when its backend fails: allow, deny"},
    STR_OPT("LUCY_MCP_ORIGINS", NULL, "", 0, 0, mcp_origins,
            "comma-separated browser origins (https://host:port) allowed on /mcp besides loopback"),
    STR_OPT("LUCY_READY_REQUIRES", NULL, "", 0, 0, ready_requires,
            "comma-separated dependencies whose failure fails readiness: redis, qdrant"),
    {"QDRANT_URL", NULL, LUCY_OPT_URL, NULL, 0, 0, http_schemes, 0, 0, OFF(qdrant_url),
     "Qdrant REST URL (http://host:6333); unset = embedded SQLite FTS5 index"},
    STR_OPT("QDRANT_API_KEY", NULL, NULL, 1, 0, qdrant_api_key, "Qdrant api-key header value"),
    STR_OPT("QDRANT_COLLECTION", NULL, "lucy_data", 0, 0, qdrant_collection,
            "Qdrant collection of the search index"),
    INT_OPT("LUCY_QDRANT_TIMEOUT_MS", NULL, "3000", 50, 600000, qdrant_timeout_ms,
            "timeout of every Qdrant call (connect included), ms"),
    {"LUCY_EMBED_URL", NULL, LUCY_OPT_URL, NULL, 0, 0, http_schemes, 0, 0, OFF(embed_url),
     "OpenAI-compatible base URL for /embeddings (http://host:11434/v1); unset = BM25 only"},
    STR_OPT("LUCY_EMBED_MODEL", NULL, NULL, 0, 0, embed_model,
            "embedding model name sent to LUCY_EMBED_URL (required with it)"),
    STR_OPT("LUCY_EMBED_API_KEY", NULL, NULL, 1, 0, embed_api_key,
            "bearer token for LUCY_EMBED_URL"),
    INT_OPT("LUCY_EMBED_TIMEOUT_MS", NULL, "10000", 100, 600000, embed_timeout_ms,
            "timeout of one embeddings request (a batch of documents), ms"),
    {"LUCY_DEFAULT_REGION", NULL, LUCY_OPT_REGION, NULL, 0, 0, NULL, 0, 0, OFF(default_region),
     "ISO 3166 alpha-2 region (GB, DE, US) that national phone numbers are read in"},
    {"LUCY_CALL_NAME_PATTERNS", NULL, LUCY_OPT_CALL_PATTERNS, NULL, 0, 0, NULL, 0, 0,
     OFF(call_name_patterns),
     "';'-separated call recording file-name templates, tried before the built-in ones"},
    {"LUCY_LLM_URL", NULL, LUCY_OPT_URL, NULL, 0, 0, http_schemes, 0, 0, OFF(llm_url),
     "OpenAI-compatible base URL for answers (http://127.0.0.1:11434/v1); unset = extractive "
     "answers"},
    STR_OPT("LUCY_LLM_MODEL", NULL, NULL, 0, 0, llm_model,
            "model name sent to LUCY_LLM_URL (llama3.1:8b, gpt-4o-mini); unset = \"lucy\""),
    STR_OPT("LUCY_LLM_API_KEY", NULL, NULL, 1, 0, llm_api_key,
            "bearer token for LUCY_LLM_URL; unset = none (local servers)"),
    INT_OPT("LUCY_LLM_TIMEOUT_MS", NULL, "30000", 100, 600000, llm_timeout_ms,
            "a whole LLM answer must arrive within this many ms, else the answer is extractive"),
    INT_OPT("LUCY_LLM_CONTEXT_TOKENS", NULL, "6000", 200, 1000000, llm_context_tokens,
            "sources given to the LLM at most, in tokens (about 4 bytes each)"),
    {"LUCY_TIMEZONE", NULL, LUCY_OPT_TIMEZONE, NULL, 0, 0, NULL, 0, 0, OFF(timezone),
     "IANA time zone (Europe/Berlin) questions' dates are read in; unset = the system's"},
};
const size_t lucy_options_count = sizeof lucy_options / sizeof lucy_options[0];

static char **str_field(struct lucy_config *cfg, const struct lucy_option *opt)
{
    return (char **)((char *)cfg + opt->offset);
}

static int *int_field(struct lucy_config *cfg, const struct lucy_option *opt)
{
    return (int *)((char *)cfg + opt->offset);
}

/* ---- one parser per type: validate text, store into the field ---------- */

static int parse_string(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                        char *err, size_t errlen)
{
    (void)err, (void)errlen;
    char **f = str_field(cfg, opt);
    if (!*v) { /* an empty value means "unset" (e.g. FOO= in compose files) */
        free(*f);
        *f = NULL;
        return 0;
    }
    char *copy = strdup(v);
    if (!copy)
        return LUCY_ENOMEM;
    free(*f);
    *f = copy;
    return 0;
}

static int parse_int(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                     char *err, size_t errlen)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < opt->min || n > opt->max) {
        snprintf(err, errlen, "invalid %s=%s%s%s: expected an integer from %ld to %ld", opt->name,
                 opt->secret ? "" : "'", opt->secret ? "(hidden)" : v, opt->secret ? "" : "'",
                 opt->min, opt->max);
        return LUCY_EINVAL;
    }
    *int_field(cfg, opt) = (int)n;
    return 0;
}

static int parse_bool(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                      char *err, size_t errlen)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            *int_field(cfg, opt) = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    snprintf(err, errlen, "invalid %s='%s': expected 0 or 1 (also true/false, yes/no, on/off)",
             opt->name, v);
    return LUCY_EINVAL;
}

static int parse_enum(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                      char *err, size_t errlen)
{
    for (const char *const *c = opt->choices; *c; c++)
        if (strcmp(v, *c) == 0)
            return parse_string(cfg, opt, v, err, errlen);
    int n = snprintf(err, errlen, "invalid %s='%s': expected one of", opt->name, v);
    for (const char *const *c = opt->choices; *c && n > 0 && (size_t)n < errlen; c++)
        n += snprintf(err + n, errlen - n, "%s %s", c == opt->choices ? "" : ",", *c);
    return LUCY_EINVAL;
}

/* "host:port" or "[v6]:port"; fills host (hostlen bytes) and *port. */
static int split_listen(const char *v, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v)
        return LUCY_EINVAL;
    const char *h = v;
    size_t hl = (size_t)(colon - v);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl == 0 || hl >= hostlen)
        return LUCY_EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
        return LUCY_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static int parse_listen(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                        char *err, size_t errlen)
{
    char host[64];
    int port;
    if (split_listen(v, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "invalid %s='%s': expected host:port with a port from 0 to 65535",
                 opt->name, v);
        return LUCY_EINVAL;
    }
    return parse_string(cfg, opt, v, err, errlen);
}

static const struct {
    const char *name;
    int seconds;
} rate_units[] = {
    {"s", 1},    {"sec", 1},     {"second", 1}, {"m", 60},
    {"min", 60}, {"minute", 60}, {"h", 3600},   {"hour", 3600},
};

/* "N/unit" -> count, period_s. */
static int split_rate(const char *v, int *count, int *period_s)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end != '/' || n < 1 || n > 1000000)
        return LUCY_EINVAL;
    for (size_t i = 0; i < sizeof rate_units / sizeof rate_units[0]; i++) {
        if (strcmp(end + 1, rate_units[i].name) == 0) {
            *count = (int)n;
            *period_s = rate_units[i].seconds;
            return 0;
        }
    }
    return LUCY_EINVAL;
}

static int parse_rate(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                      char *err, size_t errlen)
{
    int c, p;
    if (split_rate(v, &c, &p) != 0) {
        snprintf(err, errlen,
                 "invalid %s='%s': expected N/second, N/minute or N/hour with N from 1 to 1000000",
                 opt->name, v);
        return LUCY_EINVAL;
    }
    return parse_string(cfg, opt, v, err, errlen);
}

/* Whether v is an absolute URL whose scheme is one of opt->choices and
 * which names a host, by libcurl's URL parser (RFC 3986) rather than by
 * hand. config_test checks the options' defaults with it. */
static int url_ok(const struct lucy_libcurl *cu, const struct lucy_option *opt, const char *v)
{
    CURLU *u = cu->url();
    char *scheme = NULL, *host = NULL;
    int ok = u && cu->url_set(u, CURLUPART_URL, v, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
             cu->url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
             cu->url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && *host;
    int scheme_ok = 0;
    for (const char *const *c = opt->choices; ok && *c; c++)
        scheme_ok |= strcasecmp(scheme, *c) == 0;
    cu->free(scheme);
    cu->free(host);
    cu->url_cleanup(u);
    return ok && scheme_ok;
}

/* A URL url_ok() accepts. Empty = unset, as for strings. The value of a
 * secret option is never echoed. Two values are not checked, so that a
 * lucy which never talks to another server never opens libcurl:
 * * the option's default text (from the table, a file or the environment),
 *   which config_test checks;
 * * any value when libcurl cannot be opened: the URL could not be used
 *   either, and every call to it fails with the reason and remedy (install
 *   libcurl4) where the user looks (/health, the job, the command), while
 *   the rest of lucy runs (docs/decisions.md, "libcurl and libsystemd"). */
static int parse_url(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                     char *err, size_t errlen)
{
    if (!*v || (opt->default_value && strcmp(v, opt->default_value) == 0))
        return parse_string(cfg, opt, v, err, errlen);
    const struct lucy_libcurl *cu = lucy_libcurl();
    if (!cu || url_ok(cu, opt, v))
        return parse_string(cfg, opt, v, err, errlen);
    int n = snprintf(err, errlen,
                     "invalid %s=%s%.200s%s: expected an absolute URL with a host and "
                     "scheme",
                     opt->name, opt->secret ? "" : "'", opt->secret ? "(hidden)" : v,
                     opt->secret ? "" : "'");
    for (const char *const *c = opt->choices; *c && n > 0 && (size_t)n < errlen; c++)
        n += snprintf(err + n, errlen - n, "%s %s://", c == opt->choices ? "" : " or", *c);
    return LUCY_EINVAL;
}

/* Two letters, upper-cased, that libphonenumber has metadata for ("UK" is
 * not one: the ISO code is GB). Empty = unset. */
static int parse_region(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                        char *err, size_t errlen)
{
    if (!*v)
        return parse_string(cfg, opt, v, err, errlen);
    char up[3] = {0};
    for (size_t i = 0; i < 2 && v[i]; i++)
        up[i] = (v[i] >= 'a' && v[i] <= 'z') ? (char)(v[i] - 'a' + 'A') : v[i];
    if (strlen(v) == 2 && lucy_phone_region_known(up))
        return parse_string(cfg, opt, up, err, errlen);
    snprintf(err, errlen,
             "invalid %s='%.40s': expected an ISO 3166 alpha-2 region that libphonenumber knows, "
             "such as GB (the United Kingdom), DE or US",
             opt->name, v);
    return LUCY_EINVAL;
}

/* An IANA time zone name: a regular file under TZDIR (glibc's variable) or
 * /usr/share/zoneinfo (Debian's tzdata), as tzset() would read it. glibc
 * takes any TZ text without complaint (an unknown name is UTC), so the
 * file is what says the name is real. */
static int parse_timezone(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                          char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo";
    char path[PATH_MAX];
    struct stat sb;
    if (!*v || (v[0] != '/' && !strstr(v, "..") &&
                snprintf(path, sizeof path, "%s/%s", dir, v) < (int)sizeof path &&
                stat(path, &sb) == 0 && S_ISREG(sb.st_mode)))
        return parse_string(cfg, opt, v, err, errlen);
    snprintf(err, errlen,
             "invalid %s='%.60s': not an IANA time zone name known under %s; use a name such as "
             "Europe/Berlin or America/New_York (`timedatectl list-timezones`)",
             opt->name, v, dir);
    return LUCY_EINVAL;
}

/* Templates checked by the call-metadata parser itself, so what start-up
 * accepts is exactly what the scanner can use. */
static int parse_call_patterns(struct lucy_config *cfg, const struct lucy_option *opt,
                               const char *v, char *err, size_t errlen)
{
    struct lucy_call_patterns patterns;
    char why[300];
    if (lucy_call_patterns_parse(v, &patterns, why, sizeof why) != 0) {
        snprintf(err, errlen, "invalid %s: %s", opt->name, why);
        return LUCY_EINVAL;
    }
    return parse_string(cfg, opt, v, err, errlen);
}

/* Checked by the redis backend's own parser, so what start-up accepts is
 * exactly what it connects to (and no libcurl is opened for it). */
static int parse_redis_url(struct lucy_config *cfg, const struct lucy_option *opt, const char *v,
                           char *err, size_t errlen)
{
    if (*v && lucy_kv_redis_url_check(v, err, errlen) != 0)
        return LUCY_EINVAL;
    return parse_string(cfg, opt, v, err, errlen);
}

typedef int (*type_parser)(struct lucy_config *, const struct lucy_option *, const char *, char *,
                           size_t);
static const type_parser type_parsers[] = {
    [LUCY_OPT_STRING] = parse_string,
    [LUCY_OPT_INT] = parse_int,
    [LUCY_OPT_BOOL] = parse_bool,
    [LUCY_OPT_ENUM] = parse_enum,
    [LUCY_OPT_LISTEN] = parse_listen,
    [LUCY_OPT_RATE] = parse_rate,
    [LUCY_OPT_URL] = parse_url,
    [LUCY_OPT_REDIS_URL] = parse_redis_url,
    [LUCY_OPT_REGION] = parse_region,
    [LUCY_OPT_TIMEZONE] = parse_timezone,
    [LUCY_OPT_CALL_PATTERNS] = parse_call_patterns,
};

/* ---- public -------------------------------------------------------------- */

const struct lucy_option *lucy_config_option(const char *name)
{
    for (size_t i = 0; i < lucy_options_count; i++)
        if (strcmp(lucy_options[i].name, name) == 0)
            return &lucy_options[i];
    return NULL;
}

int lucy_config_set(struct lucy_config *cfg, const struct lucy_option *opt, const char *value,
                    char *err, size_t errlen)
{
    int rc = type_parsers[opt->type](cfg, opt, value, err, errlen);
    if (rc == LUCY_ENOMEM)
        snprintf(err, errlen, "out of memory setting %s", opt->name);
    return rc;
}

/* Appends value to a colon-separated list option (repeated --recordings). */
static int append_value(struct lucy_config *cfg, const struct lucy_option *opt, const char *value,
                        char *err, size_t errlen)
{
    char **f = str_field(cfg, opt);
    if (!*f || !**f)
        return lucy_config_set(cfg, opt, value, err, errlen);
    size_t n = strlen(*f) + 1 + strlen(value) + 1;
    char *joined = malloc(n);
    if (!joined)
        return LUCY_ENOMEM;
    snprintf(joined, n, "%s:%s", *f, value);
    free(*f);
    *f = joined;
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        s++;
    }
    return s;
}

/* Whether argv gives opt's flag ("--flag X" or "--flag=X"). Its value is
 * then what counts: the environment's or the file's is not read (nor
 * refused when invalid), as flags win. Not for a repeatable flag, which
 * adds to the other sources' folders. */
static int flag_wins(const struct lucy_option *opt, int argc, char **argv)
{
    size_t n = opt->flag && !opt->append ? strlen(opt->flag) : 0;
    for (int i = 0; n && i < argc; i++)
        if (strncmp(argv[i], opt->flag, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
            return 1;
    return 0;
}

static int load_file(struct lucy_config *cfg, const char *path, int argc, char **argv, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return LUCY_EINVAL;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
            rc = LUCY_EINVAL;
            break;
        }
        *eq = '\0';
        const char *key = trim(s);
        const struct lucy_option *opt = lucy_config_option(key);
        if (!opt) {
            snprintf(err, errlen, "%s:%d: unknown option %s (see the README's configuration table)",
                     path, lineno, key);
            rc = LUCY_EINVAL;
            break;
        }
        if (!flag_wins(opt, argc, argv))
            rc = lucy_config_set(cfg, opt, trim(eq + 1), err, errlen);
    }
    fclose(f);
    return rc;
}

int lucy_config_load(struct lucy_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < lucy_options_count; i++) {
        const struct lucy_option *opt = &lucy_options[i];
        if (opt->default_value) {
            int rc = lucy_config_set(cfg, opt, opt->default_value, err, errlen);
            if (rc)
                return rc;
        }
    }
    for (size_t i = 0; i < lucy_options_count; i++) {
        const char *v = getenv(lucy_options[i].name);
        if (v && !flag_wins(&lucy_options[i], argc, argv)) {
            int rc = lucy_config_set(cfg, &lucy_options[i], v, err, errlen);
            if (rc)
                return rc;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a file name");
                return LUCY_EINVAL;
            }
            path = argv[i + 1];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            path = argv[i] + 9;
        }
        if (path) {
            int rc = load_file(cfg, path, argc, argv, err, errlen);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int lucy_config_flag(struct lucy_config *cfg, int argc, char **argv, int *i, char *err,
                     size_t errlen)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0)
        return 0;
    const char *eq = strchr(arg, '=');
    size_t namelen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (namelen == 8 && strncmp(arg, "--config", 8) == 0) {
        *i += eq ? 1 : 2; /* already applied by lucy_config_load */
        return 1;
    }
    for (size_t k = 0; k < lucy_options_count; k++) {
        const struct lucy_option *opt = &lucy_options[k];
        if (!opt->flag || strlen(opt->flag) != namelen || strncmp(opt->flag, arg, namelen) != 0)
            continue;
        const char *value = eq ? eq + 1 : (*i + 1 < argc ? argv[*i + 1] : NULL);
        if (!value) {
            snprintf(err, errlen, "%s needs a value (%s)", opt->flag, opt->help);
            return LUCY_EINVAL;
        }
        char why[512] = "out of memory";
        int rc = opt->append ? append_value(cfg, opt, value, why, sizeof why)
                             : lucy_config_set(cfg, opt, value, why, sizeof why);
        if (rc) { /* the flag the user typed, then the option it sets */
            snprintf(err, errlen, "%s: %s", opt->flag, why);
            return rc;
        }
        *i += eq ? 1 : 2;
        return 1;
    }
    return 0;
}

int lucy_config_finish(struct lucy_config *cfg, char *err, size_t errlen)
{
    if (split_listen(cfg->listen, cfg->listen_host, sizeof cfg->listen_host, &cfg->listen_port)) {
        snprintf(err, errlen, "invalid LUCY_LISTEN='%s'", cfg->listen);
        return LUCY_EINVAL;
    }
    if (split_rate(cfg->rate_limit, &cfg->rate_limit_count, &cfg->rate_limit_period_s)) {
        snprintf(err, errlen, "invalid LUCY_RATE_LIMIT='%s'", cfg->rate_limit);
        return LUCY_EINVAL;
    }
    if (cfg->disk_critical_pct > cfg->disk_warn_pct || cfg->disk_critical_mb > cfg->disk_warn_mb) {
        snprintf(err, errlen,
                 "invalid disk thresholds: LUCY_DISK_CRITICAL_PCT/_MB (%d%%/%d MiB) must not be "
                 "above LUCY_DISK_WARN_PCT/_MB (%d%%/%d MiB)",
                 cfg->disk_critical_pct, cfg->disk_critical_mb, cfg->disk_warn_pct,
                 cfg->disk_warn_mb);
        return LUCY_EINVAL;
    }
    if (cfg->ready_requires) {
        char copy[256];
        snprintf(copy, sizeof copy, "%s", cfg->ready_requires);
        char *save = NULL;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            if (strcmp(t, "redis") != 0 && strcmp(t, "qdrant") != 0) {
                snprintf(err, errlen,
                         "invalid LUCY_READY_REQUIRES='%s': expected a comma-separated list of "
                         "redis, qdrant",
                         cfg->ready_requires);
                return LUCY_EINVAL;
            }
        }
    }
    if (!cfg->data_dir || !*cfg->data_dir) {
        snprintf(err, errlen, "invalid LUCY_DATA_DIR='': expected a directory path");
        return LUCY_EINVAL;
    }
    return 0;
}

void lucy_config_free(struct lucy_config *cfg)
{
    for (size_t i = 0; i < lucy_options_count; i++) {
        const struct lucy_option *opt = &lucy_options[i];
        if (opt->type == LUCY_OPT_INT || opt->type == LUCY_OPT_BOOL)
            continue;
        char **f = str_field(cfg, opt);
        free(*f);
        *f = NULL;
    }
}

int lucy_config_is_loopback(const char *host)
{
    if (strcmp(host, "localhost") == 0)
        return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
    return 0;
}
