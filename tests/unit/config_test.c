/* config_test.c - option parsing, precedence and validation messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.c" /* url_ok */
#include "error.h"

static void defaults(void **state)
{
    (void)state;
    struct lucy_config cfg;
    char err[256];
    unsetenv("LUCY_LISTEN");
    assert_int_equal(lucy_config_load(&cfg, 0, NULL, err, sizeof err), 0);
    assert_int_equal(lucy_config_finish(&cfg, err, sizeof err), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8765);
    assert_int_equal(cfg.disk_warn_pct, 10);
    assert_int_equal(cfg.disk_critical_mb, 256);
    assert_int_equal(cfg.rate_limit_count, 60);
    assert_int_equal(cfg.rate_limit_period_s, 60);
    assert_null(cfg.api_token);
    lucy_config_free(&cfg);
}

/* Every option's default passes its own check when given as a value. A
 * URL's default text is not checked at load (parse_url would open libcurl
 * at every start): here it is, with url_ok itself. */
static void defaults_pass_their_checks(void **state)
{
    (void)state;
    const struct lucy_libcurl *cu = lucy_libcurl();
    assert_non_null(cu);
    for (size_t i = 0; i < lucy_options_count; i++) {
        const struct lucy_option *opt = &lucy_options[i];
        if (!opt->default_value)
            continue;
        if (opt->type == LUCY_OPT_URL && !url_ok(cu, opt, opt->default_value))
            fail_msg("default of %s ('%s') is not a URL it accepts", opt->name, opt->default_value);
        struct lucy_config cfg;
        char err[256] = "", *copy = strdup(opt->default_value);
        assert_int_equal(lucy_config_load(&cfg, 0, NULL, err, sizeof err), 0);
        if (lucy_config_set(&cfg, opt, copy, err, sizeof err) != 0)
            fail_msg("default of %s ('%s') refused: %s", opt->name, copy, err);
        lucy_config_free(&cfg);
        free(copy);
    }
}

static void precedence_env_file_flags(void **state)
{
    (void)state;
    char path[] = "/tmp/lucy-config-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "# comment\nLUCY_LISTEN = 127.0.0.1:9000\nLUCY_DISK_WARN_PCT=20\n"
                       "LUCY_DATA_DIR=\"/tmp/x\"\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    setenv("LUCY_LISTEN", "127.0.0.1:7000", 1);
    setenv("LUCY_DISK_CRITICAL_PCT", "3", 1);
    char *argv[] = {"--config",     path, "--listen",       "127.0.0.1:9100",
                    "--recordings", "/a", "--recordings=/b"};
    int argc = 7;
    struct lucy_config cfg;
    char err[256];
    assert_int_equal(lucy_config_load(&cfg, argc, argv, err, sizeof err), 0);
    for (int i = 0; i < argc;)
        assert_int_equal(lucy_config_flag(&cfg, argc, argv, &i, err, sizeof err), 1);
    assert_int_equal(lucy_config_finish(&cfg, err, sizeof err), 0);
    assert_int_equal(cfg.listen_port, 9100);     /* flag beats file and env */
    assert_int_equal(cfg.disk_warn_pct, 20);     /* from the file */
    assert_int_equal(cfg.disk_critical_pct, 3);  /* from the environment */
    assert_string_equal(cfg.data_dir, "/tmp/x"); /* quotes stripped */
    assert_string_equal(cfg.recordings_dirs, "/a:/b");
    lucy_config_free(&cfg);
    unsetenv("LUCY_LISTEN");
    unsetenv("LUCY_DISK_CRITICAL_PCT");
    unlink(path);
}

/* A flag wins over an invalid environment value: the value is not read,
 * so it does not stop the command (decisions: flags win). Without the flag
 * it still does; a bad flag value names the flag. */
static void flag_overrides_invalid_env(void **state)
{
    (void)state;
    struct lucy_config cfg;
    char err[256];
    setenv("LUCY_CALL_CHANNELS", "bogus", 1);
    char *argv[] = {"FILE", "--channels=mix"};
    assert_int_equal(lucy_config_load(&cfg, 2, argv, err, sizeof err), 0);
    for (int i = 1; i < 2;)
        assert_int_equal(lucy_config_flag(&cfg, 2, argv, &i, err, sizeof err), 1);
    assert_string_equal(cfg.call_channels, "mix");
    lucy_config_free(&cfg);
    assert_int_equal(lucy_config_load(&cfg, 1, argv, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "LUCY_CALL_CHANNELS='bogus'"));
    lucy_config_free(&cfg);
    unsetenv("LUCY_CALL_CHANNELS");
    char *bad[] = {"--channels", "left,right"};
    int i = 0;
    assert_int_equal(lucy_config_load(&cfg, 2, bad, err, sizeof err), 0);
    assert_int_equal(lucy_config_flag(&cfg, 2, bad, &i, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "--channels: invalid LUCY_CALL_CHANNELS='left,right'"));
    lucy_config_free(&cfg);
}

static void check_invalid(const char *name, const char *value, const char *expect)
{
    struct lucy_config cfg;
    char err[256];
    setenv(name, value, 1);
    int rc = lucy_config_load(&cfg, 0, NULL, err, sizeof err);
    unsetenv(name);
    assert_int_equal(rc, LUCY_EINVAL);
    assert_non_null(strstr(err, name));
    assert_non_null(strstr(err, expect));
    lucy_config_free(&cfg);
}

static void invalid_values_name_the_option(void **state)
{
    (void)state;
    check_invalid("LUCY_DISK_WARN_PCT", "101", "from 0 to 100");
    check_invalid("LUCY_DISK_WARN_PCT", "ten", "from 0 to 100");
    check_invalid("LUCY_SCAN_INTERVAL_S", "0", "from 1 to");
    check_invalid("LUCY_LISTEN", "nowhere", "host:port");
    check_invalid("LUCY_LISTEN", "127.0.0.1:70000", "0 to 65535");
    check_invalid("LUCY_LOG_LEVEL", "loud", "debug, info, warning, error");
    check_invalid("LUCY_FOLLOW_SYMLINKS", "maybe", "expected 0 or 1");
    check_invalid("LUCY_RATE_LIMIT", "60 per minute", "N/minute");
    check_invalid("LUCY_ASR_ENGINE", "siri", "pocketsphinx");
    check_invalid("QDRANT_URL", "nope", "http://");
    check_invalid("QDRANT_URL", "ftp://host", "https://");
    check_invalid("WHATSAPP_GRAPH_URL", "graph.facebook.com", "https://");
    check_invalid("REDIS_URL", "http://localhost:6379", "redis://");
    check_invalid("LUCY_DEFAULT_REGION", "UK", "GB (the United Kingdom)");
    check_invalid("LUCY_DEFAULT_REGION", "GBR", "ISO 3166 alpha-2");
    check_invalid("LUCY_DEFAULT_REGION", "1A", "ISO 3166 alpha-2");
    check_invalid("LUCY_CALL_NAME_PATTERNS", "{name}_{date};{caller}",
                  "template 2: '{caller}': unknown field {caller}");
    check_invalid("LUCY_CALL_NAME_PATTERNS", "{date:%H%M}", "a date needs a year");
    check_invalid("LUCY_TIMEZONE", "Mars/Base", "not an IANA time zone name");
    check_invalid("LUCY_TIMEZONE", "../../etc/passwd", "not an IANA time zone name");
    check_invalid("LUCY_TIMEZONE", "/etc/localtime", "not an IANA time zone name");
    check_invalid("LUCY_TIMEZONE", "Europe", "not an IANA time zone name"); /* a directory */
}

/* LUCY_DEFAULT_REGION is stored upper-case; empty means unset. A valid
 * LUCY_CALL_NAME_PATTERNS is kept as written. */
static void people_options(void **state)
{
    (void)state;
    struct lucy_config cfg;
    char err[256];
    setenv("LUCY_DEFAULT_REGION", "gb", 1);
    setenv("LUCY_CALL_NAME_PATTERNS", "{name} - {date:%Y-%m-%d %H-%M};", 1);
    assert_int_equal(lucy_config_load(&cfg, 0, NULL, err, sizeof err), 0);
    assert_string_equal(cfg.default_region, "GB");
    assert_string_equal(cfg.call_name_patterns, "{name} - {date:%Y-%m-%d %H-%M};");
    lucy_config_free(&cfg);
    setenv("LUCY_DEFAULT_REGION", "", 1);
    unsetenv("LUCY_CALL_NAME_PATTERNS");
    assert_int_equal(lucy_config_load(&cfg, 0, NULL, err, sizeof err), 0);
    assert_null(cfg.default_region);
    assert_null(cfg.call_name_patterns);
    unsetenv("LUCY_DEFAULT_REGION");
    lucy_config_free(&cfg);
}

static void secret_url_not_echoed(void **state)
{
    (void)state;
    struct lucy_config cfg;
    char err[256];
    setenv("REDIS_URL", "tcp://:hunter2@localhost", 1);
    assert_int_equal(lucy_config_load(&cfg, 0, NULL, err, sizeof err), LUCY_EINVAL);
    unsetenv("REDIS_URL");
    assert_null(strstr(err, "hunter2"));
    assert_non_null(strstr(err, "REDIS_URL"));
    lucy_config_free(&cfg);
    setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/2", 1);
    assert_int_equal(lucy_config_load(&cfg, 0, NULL, err, sizeof err), 0);
    unsetenv("REDIS_URL");
    lucy_config_free(&cfg);
}

/* REDIS_URL is checked by the redis backend's own parser: start-up accepts
 * what it connects to (a password with an unescaped '@', which libcurl's
 * URL parser refused) and refuses what it cannot use (a database that is
 * not a number, which libcurl's parser let through to a kv that then did
 * not start). */
static void redis_url_checked_by_the_redis_parser(void **state)
{
    (void)state;
    struct lucy_config cfg;
    char err[256];
    setenv("REDIS_URL", "redis://:p@ss@127.0.0.1:6379/2", 1);
    int rc = lucy_config_load(&cfg, 0, NULL, err, sizeof err);
    unsetenv("REDIS_URL");
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.redis_url, "redis://:p@ss@127.0.0.1:6379/2");
    lucy_config_free(&cfg);
    setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/two", 1);
    rc = lucy_config_load(&cfg, 0, NULL, err, sizeof err);
    unsetenv("REDIS_URL");
    assert_int_equal(rc, LUCY_EINVAL);
    assert_non_null(strstr(err, "REDIS_URL has a bad database number"));
    assert_null(strstr(err, "hunter2"));
    lucy_config_free(&cfg);
}

static void unknown_key_in_file(void **state)
{
    (void)state;
    char path[] = "/tmp/lucy-config-test-XXXXXX";
    int fd = mkstemp(path);
    const char *text = "LUCY_NOPE=1\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char *argv[] = {"--config", path};
    struct lucy_config cfg;
    char err[256];
    assert_int_equal(lucy_config_load(&cfg, 2, argv, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "LUCY_NOPE"));
    assert_non_null(strstr(err, ":1:"));
    lucy_config_free(&cfg);
    unlink(path);
}

static void thresholds_must_be_ordered(void **state)
{
    (void)state;
    struct lucy_config cfg;
    char err[256];
    setenv("LUCY_DISK_CRITICAL_PCT", "20", 1);
    assert_int_equal(lucy_config_load(&cfg, 0, NULL, err, sizeof err), 0);
    assert_int_equal(lucy_config_finish(&cfg, err, sizeof err), LUCY_EINVAL);
    assert_non_null(strstr(err, "LUCY_DISK_CRITICAL_PCT"));
    unsetenv("LUCY_DISK_CRITICAL_PCT");
    lucy_config_free(&cfg);
}

static void secrets_are_not_echoed(void **state)
{
    (void)state;
    /* "_TOKENS" is a count (LUCY_LLM_CONTEXT_TOKENS), not a token. */
    for (size_t i = 0; i < lucy_options_count; i++)
        if ((strstr(lucy_options[i].name, "TOKEN") && !strstr(lucy_options[i].name, "_TOKENS")) ||
            strstr(lucy_options[i].name, "SECRET") || strstr(lucy_options[i].name, "API_KEY"))
            assert_true(lucy_options[i].secret);
}

static void loopback(void **state)
{
    (void)state;
    assert_true(lucy_config_is_loopback("127.0.0.1"));
    assert_true(lucy_config_is_loopback("127.1.2.3"));
    assert_true(lucy_config_is_loopback("::1"));
    assert_true(lucy_config_is_loopback("localhost"));
    assert_false(lucy_config_is_loopback("0.0.0.0"));
    assert_false(lucy_config_is_loopback("10.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(defaults_pass_their_checks),
        cmocka_unit_test(precedence_env_file_flags),
        cmocka_unit_test(flag_overrides_invalid_env),
        cmocka_unit_test(invalid_values_name_the_option),
        cmocka_unit_test(redis_url_checked_by_the_redis_parser),
        cmocka_unit_test(people_options),
        cmocka_unit_test(unknown_key_in_file),
        cmocka_unit_test(secret_url_not_echoed),
        cmocka_unit_test(thresholds_must_be_ordered),
        cmocka_unit_test(secrets_are_not_echoed),
        cmocka_unit_test(loopback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
