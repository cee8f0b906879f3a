/*
 * config.h - lucy's configuration: one table of typed options (config.c).
 *
 * Sources, later ones winning: built-in defaults, the environment, the
 * KEY=VALUE file named by --config, command-line flags. Every value is
 * validated against its row (type, bounds, choices) and an invalid one stops
 * start-up with one line naming the option and what it accepts.
 *
 * Secrets (tokens, app secrets) are marked in the table and never printed.
 * After loading, a struct lucy_config is read-only and may be shared by all
 * threads without locking.
 */
#ifndef LUCY_CONFIG_H
#define LUCY_CONFIG_H

#include <stddef.h>

struct lucy_config {
    char *listen;                /* LUCY_LISTEN "host:port" */
    char listen_host[64];        /* derived from listen */
    int listen_port;             /* derived from listen; 0 = any free port */
    char *data_dir;              /* LUCY_DATA_DIR */
    char *recordings_dirs;       /* LUCY_RECORDINGS_DIRS, colon-separated */
    int scan_interval_s;         /* LUCY_SCAN_INTERVAL_S */
    int scan_settle_s;           /* LUCY_SCAN_SETTLE_S */
    int follow_symlinks;         /* LUCY_FOLLOW_SYMLINKS (bool) */
    char *api_token;             /* LUCY_API_TOKEN (secret) */
    char *log_level;             /* LUCY_LOG_LEVEL */
    int disk_warn_pct;           /* LUCY_DISK_WARN_PCT */
    int disk_warn_mb;            /* LUCY_DISK_WARN_MB */
    int disk_critical_pct;       /* LUCY_DISK_CRITICAL_PCT */
    int disk_critical_mb;        /* LUCY_DISK_CRITICAL_MB */
    int disk_reserve_mb;         /* LUCY_DISK_RESERVE_MB; 0 disables */
    char *disk_paths;            /* LUCY_DISK_PATHS, colon-separated */
    int disk_interval_ms;        /* LUCY_DISK_INTERVAL_MS: how often disk is measured */
    int http_threads;            /* LUCY_HTTP_THREADS: libmicrohttpd pool size */
    int http_request_timeout_s;  /* LUCY_HTTP_REQUEST_TIMEOUT_S: whole request must arrive */
    int http_body_budget_mb;     /* LUCY_HTTP_BODY_BUDGET_MB: bodies held at once */
    char *backup_dir;            /* LUCY_BACKUP_DIR: scheduled backups; NULL = none */
    int backup_interval_h;       /* LUCY_BACKUP_INTERVAL_H */
    int backup_keep;             /* LUCY_BACKUP_KEEP */
    int retention_days;          /* LUCY_RETENTION_DAYS: 0 = keep forever */
    int store_check_interval_s;  /* LUCY_STORE_CHECK_INTERVAL_S: quick_check period; 0 = start only
                                  */
    char *asr_engine;            /* LUCY_ASR_ENGINE */
    char *whisper_model;         /* LUCY_WHISPER_MODEL */
    char *asr_url;               /* LUCY_ASR_URL */
    int asr_threads;             /* LUCY_ASR_THREADS; 0 = number of cores */
    int asr_workers;             /* LUCY_ASR_WORKERS */
    char *call_channels;         /* LUCY_CALL_CHANNELS: "me,them", "them,me", "mix" */
    int asr_chunk_s;             /* LUCY_ASR_CHUNK_S: longest chunk recognised at once */
    int asr_idle_unload_s;       /* LUCY_ASR_IDLE_UNLOAD_S; 0 = keep the model loaded */
    int job_retry_base_s;        /* LUCY_JOB_RETRY_BASE_S: first retry delay of a locked file */
    char *whatsapp_verify_token; /* WHATSAPP_VERIFY_TOKEN (secret) */
    char *whatsapp_app_secret;   /* WHATSAPP_APP_SECRET (secret) */
    char *whatsapp_access_token; /* WHATSAPP_ACCESS_TOKEN (secret) */
    char *whatsapp_graph_url;    /* WHATSAPP_GRAPH_URL */
    char *rate_limit;            /* LUCY_RATE_LIMIT "N/unit" */
    int rate_limit_count;        /* derived: N */
    int rate_limit_period_s;     /* derived: unit in seconds */
    char *redis_url;             /* REDIS_URL (secret: holds the password); unset = sqlite kv */
    int redis_timeout_ms;        /* LUCY_REDIS_TIMEOUT_MS: connect and per-command timeout */
    int redis_pool_size;         /* LUCY_REDIS_POOL_SIZE: Redis connections at most */
    int redis_autoheal;          /* LUCY_REDIS_AUTOHEAL (bool) */
    char *rate_limit_on_error;   /* LUCY_RATE_LIMIT_ON_ERROR allow|deny */
    char *ready_requires;        /* LUCY_READY_REQUIRES csv of redis,qdrant */
    char *mcp_origins;           /* LUCY_MCP_ORIGINS csv of browser origins allowed on /mcp */
    char *qdrant_url;            /* QDRANT_URL; unset = embedded SQLite FTS5 index */
    char *qdrant_api_key;        /* QDRANT_API_KEY (secret): sent as the api-key header */
    char *qdrant_collection;     /* QDRANT_COLLECTION */
    int qdrant_timeout_ms;       /* LUCY_QDRANT_TIMEOUT_MS: connect + whole-call timeout */
    char *embed_url;             /* LUCY_EMBED_URL: OpenAI-compatible base URL, NULL = BM25 only */
    char *embed_model;           /* LUCY_EMBED_MODEL */
    char *embed_api_key;         /* LUCY_EMBED_API_KEY (secret) */
    int embed_timeout_ms;        /* LUCY_EMBED_TIMEOUT_MS: one embeddings request */
    char *default_region;        /* LUCY_DEFAULT_REGION (ISO 3166 alpha-2); NULL = none */
    char *call_name_patterns;    /* LUCY_CALL_NAME_PATTERNS: ';'-separated templates */
    char *llm_url;               /* LUCY_LLM_URL: OpenAI-compatible base URL; NULL = none */
    char *llm_model;             /* LUCY_LLM_MODEL; NULL = "lucy" */
    char *llm_api_key;           /* LUCY_LLM_API_KEY (secret): bearer token */
    int llm_timeout_ms;          /* LUCY_LLM_TIMEOUT_MS: a whole answer, connect included */
    int llm_context_tokens;      /* LUCY_LLM_CONTEXT_TOKENS: sources' budget */
    char *timezone;              /* LUCY_TIMEZONE: IANA name; NULL = the system's */
};

enum lucy_opt_type {
    LUCY_OPT_STRING,       /* any text (may be empty) */
    LUCY_OPT_INT,          /* decimal integer within [min, max] */
    LUCY_OPT_BOOL,         /* 0/1, true/false, yes/no, on/off */
    LUCY_OPT_ENUM,         /* one of choices */
    LUCY_OPT_LISTEN,       /* host:port */
    LUCY_OPT_RATE,         /* N/second|minute|hour (also s, sec, min, h) */
    LUCY_OPT_URL,          /* absolute URL with a host; choices = accepted schemes */
    LUCY_OPT_REDIS_URL,    /* a URL lucy_kv_redis_url_check accepts (redis://) */
    LUCY_OPT_REGION,       /* ISO 3166 alpha-2 region libphonenumber knows; stored upper-case */
    LUCY_OPT_TIMEZONE,     /* IANA zone name with a file under TZDIR or /usr/share/zoneinfo */
    LUCY_OPT_CALL_PATTERNS /* file-name templates (lucy_call_patterns_parse) */
};

struct lucy_option {
    const char *name;           /* environment / file key */
    const char *flag;           /* command-line flag or NULL */
    enum lucy_opt_type type;    /* how the text is parsed */
    const char *default_value;  /* as text; NULL = unset */
    long min, max;              /* bounds for LUCY_OPT_INT */
    const char *const *choices; /* NULL-terminated, for LUCY_OPT_ENUM */
    int secret;                 /* never printed or returned */
    int append;                 /* repeated flags join with ':' */
    size_t offset;              /* field in struct lucy_config */
    const char *help;           /* one line for the README and --help */
};

/* The option table and its length. */
extern const struct lucy_option lucy_options[];
extern const size_t lucy_options_count;

/* Finds a row by its name (e.g. "LUCY_LISTEN"); NULL if unknown. */
const struct lucy_option *lucy_config_option(const char *name);

/* Fills cfg with the defaults, then the environment, then the file named by
 * a "--config FILE" (or "--config=FILE") found in argv, if any; an option
 * whose (not repeatable) flag is in argv is read from neither, so an
 * invalid LUCY_X does not stop a command whose --x overrides it.
 * Returns 0, or LUCY_EINVAL with one line in err (errlen bytes). The caller
 * owns cfg and frees it with lucy_config_free() on every path. */
int lucy_config_load(struct lucy_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Sets one option from text. Returns 0 or LUCY_EINVAL (err says why). */
int lucy_config_set(struct lucy_config *cfg, const struct lucy_option *opt, const char *value,
                    char *err, size_t errlen);

/* Applies argv[*i] if it is a config flag ("--listen X", "--listen=X",
 * or "--config FILE", which lucy_config_load has already read). Returns 1
 * and advances *i past what it consumed; 0 if argv[*i] is not a config flag
 * (then *i is unchanged); LUCY_EINVAL on a bad value or a missing one. */
int lucy_config_flag(struct lucy_config *cfg, int argc, char **argv, int *i, char *err,
                     size_t errlen);

/* Checks rules across options and fills the derived fields (listen_host,
 * listen_port, rate_limit_*). Call after the last set. 0 or LUCY_EINVAL. */
int lucy_config_finish(struct lucy_config *cfg, char *err, size_t errlen);

/* Frees the strings of cfg (not cfg itself). Safe on a zeroed struct. */
void lucy_config_free(struct lucy_config *cfg);

/* 1 when host names the loopback interface (127.0.0.0/8, ::1, localhost). */
int lucy_config_is_loopback(const char *host);

#endif
