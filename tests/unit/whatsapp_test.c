/* whatsapp_test.c - the WhatsApp plugin's pure parts: the signature check
 * (RFC 4231 vector, the unicode_escaped fixture's exact bytes), the payload
 * parser on every fixture, message text by type, status ranking, GCRA and
 * its SQLite row.
 *
 * Fixtures are read from tests/fixtures/whatsapp, found relative to this
 * file's path as the compiler saw it (meson runs tests in the build
 * directory and compiles with paths relative to it) or $LUCY_FIXTURES. */
#define _GNU_SOURCE
#include <libgen.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "plugins/whatsapp/whatsapp.h"

static char fixtures[1024];

/* HMAC-SHA256 of tests/fixtures/whatsapp/unicode_escaped.json with the key
 * "test-app-secret", from the openssl command line (not from lucy). */
#define UNICODE_FIXTURE_HMAC "0c436d03391282a29e0dd1be2f8451aa56c1c502bcdd4e18a1917542df7bf506"

static char *slurp(const char *name, size_t *len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/whatsapp/%s", fixtures, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* ---- signature ------------------------------------------------------------ */

static void test_signature_rfc4231(void **state)
{
    (void)state;
    /* RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?" */
    const char *data = "what do ya want for nothing?";
    const char *want = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    char sig[80];
    assert_int_equal(lucy_wa_signature_make("Jefe", data, strlen(data), sig, sizeof sig), 0);
    assert_string_equal(sig, want);
    assert_int_equal(lucy_wa_signature_check("Jefe", want, data, strlen(data)), 0);
    /* upper-case hex is the same signature */
    assert_int_equal(lucy_wa_signature_check("Jefe",
                                             "sha256=5BDCC146BF60754E6A042426089575C75A003F089D2"
                                             "739839DEC58B964EC3843",
                                             data, strlen(data)),
                     0);
}

static void test_signature_rejects(void **state)
{
    (void)state;
    const char *data = "what do ya want for nothing?";
    size_t n = strlen(data);
    const char *good = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    char bad[80];
    snprintf(bad, sizeof bad, "%s", good);
    bad[20] = bad[20] == '0' ? '1' : '0';
    assert_int_equal(lucy_wa_signature_check("Jefe", bad, data, n), LUCY_EPERM);
    assert_int_equal(lucy_wa_signature_check("jefe", good, data, n), LUCY_EPERM);
    assert_int_equal(lucy_wa_signature_check("Jefe", good, data, n - 1), LUCY_EPERM);
    assert_int_equal(lucy_wa_signature_check("Jefe", NULL, data, n), LUCY_EINVAL);
    assert_int_equal(lucy_wa_signature_check("Jefe", "", data, n), LUCY_EINVAL);
    assert_int_equal(lucy_wa_signature_check("Jefe", good + 7, data, n), LUCY_EINVAL);
    assert_int_equal(lucy_wa_signature_check("Jefe", "sha1=5bdcc146bf60754e6a04", data, n),
                     LUCY_EINVAL);
    /* truncated, too long, non-hex */
    snprintf(bad, sizeof bad, "%.*s", 70, good);
    assert_int_equal(lucy_wa_signature_check("Jefe", bad, data, n), LUCY_EINVAL);
    snprintf(bad, sizeof bad, "%s0", good);
    assert_int_equal(lucy_wa_signature_check("Jefe", bad, data, n), LUCY_EINVAL);
    snprintf(bad, sizeof bad, "%s", good);
    bad[30] = 'g';
    assert_int_equal(lucy_wa_signature_check("Jefe", bad, data, n), LUCY_EINVAL);
}

/* The fixture is signed over its exact bytes, \u escapes and \/ included;
 * the expected value was computed independently with
 *   openssl dgst -sha256 -hmac test-app-secret -hex < unicode_escaped.json
 * A parse-and-re-serialise of the same JSON must not verify. */
static void test_signature_unicode_fixture(void **state)
{
    (void)state;
    size_t len;
    char *body = slurp("unicode_escaped.json", &len);
    assert_int_equal(body[len - 1], '}'); /* no trailing newline */
    const char *want = "sha256=" UNICODE_FIXTURE_HMAC;
    assert_int_equal(lucy_wa_signature_check("test-app-secret", want, body, len), 0);
    json_t *j = json_loadb(body, len, 0, NULL);
    assert_non_null(j);
    char *again = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_int_not_equal(strcmp(again, body), 0);
    assert_int_equal(lucy_wa_signature_check("test-app-secret", want, again, strlen(again)),
                     LUCY_EPERM);
    free(again);
    json_decref(j);
    free(body);
}

/* ---- payload -------------------------------------------------------------- */

static struct lucy_wa_payload parse_fixture(const char *name)
{
    size_t len;
    char *body = slurp(name, &len);
    struct lucy_wa_payload p;
    char err[256];
    assert_int_equal(lucy_wa_payload_parse(body, len, &p, err, sizeof err), 0);
    free(body);
    return p;
}

static char *text_of(const struct lucy_wa_message *m)
{
    json_t *j = json_loads(m->raw, 0, NULL);
    assert_non_null(j);
    char *t = lucy_wa_message_text(j);
    json_decref(j);
    assert_non_null(t);
    return t;
}

static void test_payload_text(void **state)
{
    (void)state;
    struct lucy_wa_payload p = parse_fixture("text.json");
    assert_int_equal(p.n_messages, 1);
    assert_int_equal(p.n_statuses, 0);
    const struct lucy_wa_message *m = &p.messages[0];
    assert_string_equal(m->wamid, "wamid.TEXT0001");
    assert_string_equal(m->sender, "15550002222");
    assert_string_equal(m->wa_id, "15550002222");
    assert_null(m->user_id);
    assert_string_equal(m->type, "text");
    assert_true(m->known_type);
    assert_int_equal(m->timestamp_s, 1764460800);
    assert_string_equal(m->profile_name, "Alex Example");
    assert_string_equal(m->phone_number_id, "200000000000002");
    char *t = text_of(m);
    assert_string_equal(t, "Can you call me back about the invoice for March?");
    free(t);
    lucy_wa_payload_free(&p);
}

static void test_payload_voice_image(void **state)
{
    (void)state;
    struct lucy_wa_payload p = parse_fixture("voice_note.json");
    assert_int_equal(p.n_messages, 1);
    assert_string_equal(p.messages[0].type, "audio");
    char *t = text_of(&p.messages[0]);
    assert_string_equal(t, "voice note");
    free(t);
    lucy_wa_payload_free(&p);

    p = parse_fixture("image_caption.json");
    assert_string_equal(p.messages[0].wamid, "wamid.IMAGE0001");
    assert_string_equal(p.messages[0].profile_name, "Sam Sample");
    t = text_of(&p.messages[0]);
    assert_string_equal(t, "image: Receipt from the hardware store");
    free(t);
    lucy_wa_payload_free(&p);
}

static void test_payload_reply_reaction_location(void **state)
{
    (void)state;
    struct lucy_wa_payload p = parse_fixture("reply_reaction_location.json");
    assert_int_equal(p.n_messages, 3);
    static const char *const wamids[] = {"wamid.REPLY0001", "wamid.REACT0001", "wamid.LOC0001"};
    static const char *const texts[] = {
        "Yes, Thursday works.",
        "reaction \xf0\x9f\x91\x8d", /* U+1F44D from the \ud83d\udc4d surrogate pair */
        "location: Central Station, Stationsplein 1 (52.367600, 4.904100)",
    };
    for (int i = 0; i < 3; i++) {
        assert_string_equal(p.messages[i].wamid, wamids[i]);
        assert_true(p.messages[i].known_type);
        char *t = text_of(&p.messages[i]);
        assert_string_equal(t, texts[i]);
        free(t);
    }
    lucy_wa_payload_free(&p);
}

static void test_payload_statuses(void **state)
{
    (void)state;
    struct lucy_wa_payload p = parse_fixture("status_read.json");
    assert_int_equal(p.n_messages, 0);
    assert_int_equal(p.n_statuses, 2);
    assert_string_equal(p.statuses[0].id, "wamid.OUT0001");
    assert_string_equal(p.statuses[0].status, "read");
    assert_string_equal(p.statuses[0].recipient_id, "15550002222");
    assert_int_equal(p.statuses[0].timestamp_s, 1764461200);
    assert_string_equal(p.statuses[1].status, "failed");
    assert_non_null(strstr(p.statuses[1].raw, "131049"));
    lucy_wa_payload_free(&p);
}

static void test_payload_batch_and_unicode(void **state)
{
    (void)state;
    struct lucy_wa_payload p = parse_fixture("batch_two_entries.json");
    assert_int_equal(p.n_messages, 2);
    assert_string_equal(p.messages[0].profile_name, "Alex Example");
    assert_string_equal(p.messages[1].profile_name, "Robin Placeholder");
    assert_string_equal(p.messages[1].phone_number_id, "200000000000009");
    lucy_wa_payload_free(&p);

    p = parse_fixture("unicode_escaped.json");
    assert_int_equal(p.n_messages, 1);
    assert_string_equal(p.messages[0].profile_name, "Ren\xc3\xa9 \xc3\x85"
                                                    "berg");
    char *t = text_of(&p.messages[0]);
    assert_string_equal(t, "J'ai mang\xc3\xa9 \xc3\xa0 6/7 \xf0\x9f\x98\x80");
    free(t);
    lucy_wa_payload_free(&p);
}

static void test_payload_other_types(void **state)
{
    (void)state;
    const char *body =
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"value\":{"
        "\"contacts\":[{\"profile\":{\"name\":\"U\"},\"user_id\":\"US.123\"}],"
        "\"messages\":["
        "{\"from_user_id\":\"US.123\",\"id\":\"w1\",\"timestamp\":\"5\",\"type\":\"button\","
        "\"button\":{\"text\":\"Yes please\",\"payload\":\"y\"}},"
        "{\"from_user_id\":\"US.123\",\"id\":\"w2\",\"timestamp\":\"6\",\"type\":\"interactive\","
        "\"interactive\":{\"type\":\"list_reply\",\"list_reply\":{\"id\":\"1\",\"title\":"
        "\"Tuesday\","
        "\"description\":\"morning\"}}},"
        "{\"from_user_id\":\"US.123\",\"id\":\"w3\",\"timestamp\":\"7\",\"type\":\"contacts\","
        "\"contacts\":[{\"name\":{\"formatted_name\":\"Kim Doe\"},\"phones\":[{\"phone\":\"+1 "
        "555\"}]}]},"
        "{\"from_user_id\":\"US.123\",\"id\":\"w4\",\"timestamp\":\"8\",\"type\":\"document\","
        "\"document\":{\"filename\":\"plan.pdf\",\"caption\":\"the plan\"}},"
        "{\"from_user_id\":\"US.123\",\"id\":\"w5\",\"timestamp\":\"9\",\"type\":\"ephemeral\"},"
        "{\"from\":\"1\",\"timestamp\":\"9\",\"type\":\"text\"},"
        "7]}}]}]}";
    struct lucy_wa_payload p;
    char err[256];
    assert_int_equal(lucy_wa_payload_parse(body, strlen(body), &p, err, sizeof err), 0);
    assert_int_equal(p.n_messages, 5);
    assert_int_equal(p.n_malformed, 2);
    assert_int_equal(p.n_unknown_types, 1);
    for (size_t i = 0; i < p.n_messages; i++) {
        assert_string_equal(p.messages[i].sender, "US.123");
        assert_null(p.messages[i].wa_id);
        assert_string_equal(p.messages[i].user_id, "US.123");
        assert_string_equal(p.messages[i].profile_name, "U");
    }
    static const char *const texts[] = {"Yes please", "Tuesday morning",
                                        "shared contact: Kim Doe +1 555",
                                        "document: the plan plan.pdf", ""};
    for (int i = 0; i < 5; i++) {
        char *t = text_of(&p.messages[i]);
        assert_string_equal(t, texts[i]);
        free(t);
    }
    assert_false(p.messages[4].known_type);
    lucy_wa_payload_free(&p);
}

static void test_payload_malformed(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "", "{", "not json", "[]", "{\"entry\":{}}", "{\"object\":\"x\"}", "\"entry\"",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct lucy_wa_payload p;
        char err[256] = "";
        assert_int_equal(lucy_wa_payload_parse(bodies[i], strlen(bodies[i]), &p, err, sizeof err),
                         LUCY_EINVAL);
        assert_true(err[0] != '\0');
        lucy_wa_payload_free(&p);
    }
    /* valid but empty: accepted with nothing in it */
    struct lucy_wa_payload p;
    char err[256];
    const char *empty = "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":"
                        "[{\"value\":5},{\"value\":{\"messages\":7}}]}, 3]}";
    assert_int_equal(lucy_wa_payload_parse(empty, strlen(empty), &p, err, sizeof err), 0);
    assert_int_equal(p.n_messages + p.n_statuses, 0);
    lucy_wa_payload_free(&p);
}

/* ---- status ranking ------------------------------------------------------- */

static void test_status_rank(void **state)
{
    (void)state;
    assert_true(lucy_wa_status_rank("sent") < lucy_wa_status_rank("delivered"));
    assert_true(lucy_wa_status_rank("delivered") < lucy_wa_status_rank("read"));
    assert_true(lucy_wa_status_rank("read") < lucy_wa_status_rank("played"));
    assert_true(lucy_wa_status_rank("sent") < lucy_wa_status_rank("failed"));
    assert_int_equal(lucy_wa_status_rank("deleted"), 0);
    assert_int_equal(lucy_wa_status_rank(NULL), 0);
}

/* ---- GCRA ----------------------------------------------------------------- */

static void test_gcra(void **state)
{
    (void)state;
    /* 3 per 60 s: a burst of 3 conforms, the 4th does not; one more
     * conforms 20 s later (the emission interval) */
    int64_t tat = 0, t = 1000000;
    assert_true(lucy_wa_gcra(&tat, t, 60000, 3));
    assert_true(lucy_wa_gcra(&tat, t, 60000, 3));
    assert_true(lucy_wa_gcra(&tat, t, 60000, 3));
    int64_t before = tat;
    assert_false(lucy_wa_gcra(&tat, t, 60000, 3));
    assert_int_equal(tat, before); /* a refused event does not count */
    assert_false(lucy_wa_gcra(&tat, t + 19999, 60000, 3));
    assert_true(lucy_wa_gcra(&tat, t + 20000, 60000, 3));
    assert_false(lucy_wa_gcra(&tat, t + 20000, 60000, 3));
    /* after a long pause the full burst is back */
    assert_true(lucy_wa_gcra(&tat, t + 600000, 60000, 3));
    assert_true(lucy_wa_gcra(&tat, t + 600000, 60000, 3));
    assert_true(lucy_wa_gcra(&tat, t + 600000, 60000, 3));
    assert_false(lucy_wa_gcra(&tat, t + 600000, 60000, 3));
    /* count 0 disables */
    tat = 0;
    for (int i = 0; i < 100; i++)
        assert_true(lucy_wa_gcra(&tat, t, 60000, 0));
    /* a steady 1 per second under 60/min never trips */
    tat = 0;
    for (int i = 0; i < 1000; i++)
        assert_true(lucy_wa_gcra(&tat, t + i * 1000, 60000, 60));
}

static void test_ratelimit_rows(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE wa_rate_limit (key TEXT PRIMARY KEY, tat_ms "
                                  "INTEGER NOT NULL) WITHOUT ROWID",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct lucy_wa_ratelimit *rl;
    assert_int_equal(lucy_wa_ratelimit_open(db, &rl), 0);
    int allowed, n_allowed = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lucy_wa_ratelimit_take(rl, "whatsapp:a", 5000, 2, 60, &allowed), 0);
        n_allowed += allowed;
    }
    assert_int_equal(n_allowed, 2);
    /* another key has its own budget */
    assert_int_equal(lucy_wa_ratelimit_take(rl, "whatsapp:b", 5000, 2, 60, &allowed), 0);
    assert_true(allowed);
    /* 30 s later (60 s / 2) one more for a */
    assert_int_equal(lucy_wa_ratelimit_take(rl, "whatsapp:a", 35000, 2, 60, &allowed), 0);
    assert_true(allowed);
    assert_int_equal(lucy_wa_ratelimit_take(rl, "whatsapp:a", 35000, 2, 60, &allowed), 0);
    assert_false(allowed);
    lucy_wa_ratelimit_close(rl);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

int main(void)
{
    const char *env = getenv("LUCY_FIXTURES");
    if (env) {
        snprintf(fixtures, sizeof fixtures, "%s", env);
    } else {
        char here[1024];
        snprintf(here, sizeof here, "%s", __FILE__);
        snprintf(fixtures, sizeof fixtures, "%s/../fixtures", dirname(here));
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_rfc4231),
        cmocka_unit_test(test_signature_rejects),
        cmocka_unit_test(test_signature_unicode_fixture),
        cmocka_unit_test(test_payload_text),
        cmocka_unit_test(test_payload_voice_image),
        cmocka_unit_test(test_payload_reply_reaction_location),
        cmocka_unit_test(test_payload_statuses),
        cmocka_unit_test(test_payload_batch_and_unicode),
        cmocka_unit_test(test_payload_other_types),
        cmocka_unit_test(test_payload_malformed),
        cmocka_unit_test(test_status_rank),
        cmocka_unit_test(test_gcra),
        cmocka_unit_test(test_ratelimit_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
