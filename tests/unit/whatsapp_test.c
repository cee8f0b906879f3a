/* whatsapp_test.c - the WhatsApp plugin's pure parts: the signature check
 * (RFC 4231 vector, the unicode_escaped fixture's exact bytes), the payload
 * parser on every fixture, message text by type, status ranking; the
 * per-sender rate limit through the kv interface inside a store write
 * (and that a rolled-back step never counts), the newest-wins merge and kv
 * value of shared aliases, and migration 41 on a database from before it.
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
#include <time.h>

#include <cmocka.h>

#include "error.h"
#include "kv/kv.h"
#include "plugins/whatsapp/whatsapp.h"
#include "store/store.h"

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

/* Ids that differ only after a NUL would be one key once bound to SQLite:
 * every id with a control character is refused, naming its field. */
static void test_payload_control_characters_in_ids(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *field; /* expected in the reason */
    } cases[] = {
        {"{\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"id\":\"wamid.X\\u0000A\","
         "\"from\":\"1555\",\"type\":\"text\"}]}}]}]}",
         "entry[0].changes[0].value.messages[0].id (the wamid)"},
        {"{\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"id\":\"wamid.ok\"},{\"id\":"
         "\"wamid.Y\",\"from\":\"1555\\n\"}]}}]}]}",
         "messages[1].from (the sender's wa_id)"},
        {"{\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"id\":\"w\",\"from_user_id\":"
         "\"US.1\\u001f\"}]}}]}]}",
         "messages[0].from_user_id"},
        {"{\"entry\":[{},{\"changes\":[{},{\"value\":{\"statuses\":[{\"id\":\"wamid.S\\u0000B\","
         "\"status\":\"read\"}]}}]}]}",
         "entry[1].changes[1].value.statuses[0].id"},
        {"{\"entry\":[{\"changes\":[{\"value\":{\"statuses\":[{\"id\":\"wamid.S\",\"status\":"
         "\"read\\u0000x\"}]}}]}]}",
         "statuses[0].status"},
        {"{\"entry\":[{\"changes\":[{\"value\":{\"contacts\":[{\"wa_id\":\"1555\\u007f\"}],"
         "\"messages\":[]}}]}]}",
         "contacts[0].wa_id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct lucy_wa_payload p;
        char err[512] = "";
        assert_int_equal(
            lucy_wa_payload_parse(cases[i].body, strlen(cases[i].body), &p, err, sizeof err),
            LUCY_EINVAL);
        if (!strstr(err, cases[i].field) || !strstr(err, "control character"))
            fail_msg("case %zu: reason \"%s\" does not name %s", i, err, cases[i].field);
        lucy_wa_payload_free(&p);
    }
    /* a NUL in a message's text is not an id: accepted */
    const char *text = "{\"entry\":[{\"changes\":[{\"value\":{\"messages\":[{\"id\":\"wamid.T\","
                       "\"type\":\"text\",\"text\":{\"body\":\"a\\u0000b\"}}]}}]}]}";
    struct lucy_wa_payload p;
    char err[256];
    assert_int_equal(lucy_wa_payload_parse(text, strlen(text), &p, err, sizeof err), 0);
    assert_int_equal(p.n_messages, 1);
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

/* ---- the rate limit through the kv interface ------------------------------ */

static void make_temp_dir(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/lucy-wa-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A sequence of events for one key inside ONE store write, as the inbox
 * worker runs them (the first one at t0_ms). */
struct events {
    struct lucy_kv *kv;
    const char *key;
    int count;          /* LUCY_RATE_LIMIT count per ... */
    int64_t period_ms;  /* ... period */
    int64_t t0_ms;      /* wall ms of the first event */
    const int64_t *at;  /* offsets from t0_ms */
    int n;              /* events */
    int allowed[16];    /* out */
    int savepoint_undo; /* take each step in a savepoint and roll it back */
    int fail_after;     /* 1: return an error after the steps (no commit) */
};

/* Runs on the store's writer thread: no cmocka asserts here (they jump);
 * any unexpected result fails the write with LUCY_ECORRUPT instead. */
static int run_events(sqlite3 *db, void *arg)
{
    struct events *e = arg;
    for (int i = 0; i < e->n; i++) {
        struct lucy_kv_rate rate = {e->count, e->period_ms, e->count, e->t0_ms + e->at[i]};
        struct lucy_kv_rate_result r;
        if (e->savepoint_undo && sqlite3_exec(db, "SAVEPOINT t", NULL, NULL, NULL) != SQLITE_OK)
            return LUCY_ECORRUPT;
        if (lucy_kv_ratelimit_in_write(e->kv, db, e->key, &rate, &r, NULL) != 0 || r.from_policy)
            return LUCY_ECORRUPT;
        e->allowed[i] = r.allowed;
        if (e->savepoint_undo &&
            sqlite3_exec(db, "ROLLBACK TO t; RELEASE t", NULL, NULL, NULL) != SQLITE_OK)
            return LUCY_ECORRUPT;
    }
    return e->fail_after ? LUCY_EIO : 0;
}

static void test_ratelimit_in_write(void **state)
{
    (void)state;
    char dir[64], err[256];
    make_temp_dir(dir, sizeof dir);
    struct lucy_store *store;
    assert_int_equal(lucy_store_open(dir, &store, err, sizeof err), 0);
    struct lucy_kv_options o = {.store = store};
    struct lucy_kv *kv;
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_open(&o, &kv, &e), 0);
    assert_true(lucy_kv_caps(kv) & LUCY_KV_CAP_IN_STORE); /* the embedded backend */
    int64_t t0 = wall_ms() - 3600 * 1000;                 /* a backlog an hour old */

    /* 3 per 60 s: a burst of 3 conforms, the 4th does not; one more
     * conforms 20 s later (the emission interval); after a long pause the
     * full burst is back */
    static const int64_t at[] = {0, 0, 0, 0, 19999, 20000, 20000, 600000, 600000, 600000, 600000};
    static const int want[] = {1, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0};
    struct events ev = {kv, "whatsapp:a", 3, 60000, t0, at, 11, {0}, 0, 0};
    assert_int_equal(lucy_store_write(store, run_events, &ev, 0), 0);
    for (int i = 0; i < 11; i++)
        assert_int_equal(ev.allowed[i], want[i]);
    /* another key has its own budget */
    static const int64_t once[] = {0};
    struct events other = {kv, "whatsapp:b", 3, 60000, t0, once, 1, {0}, 0, 0};
    assert_int_equal(lucy_store_write(store, run_events, &other, 0), 0);
    assert_true(other.allowed[0]);

    /* a step rolled back with its item's savepoint, or with a write that
     * fails as a whole, never counts: the retry finds the budget intact */
    static const int64_t burst[] = {0, 0, 0};
    struct events undone = {kv, "whatsapp:c", 3, 60000, t0, burst, 3, {0}, 1, 0};
    assert_int_equal(lucy_store_write(store, run_events, &undone, 0), 0);
    struct events failed = {kv, "whatsapp:c", 3, 60000, t0, burst, 3, {0}, 0, 1};
    assert_int_equal(lucy_store_write(store, run_events, &failed, 0), LUCY_EIO);
    static const int64_t four[] = {0, 0, 0, 0};
    struct events retry = {kv, "whatsapp:c", 3, 60000, t0, four, 4, {0}, 0, 0};
    assert_int_equal(lucy_store_write(store, run_events, &retry, 0), 0);
    assert_true(retry.allowed[0] && retry.allowed[1] && retry.allowed[2]);
    assert_false(retry.allowed[3]);

    /* a steady 1 per second under 60/min never trips */
    int64_t steady_at[16];
    for (int i = 0; i < 16; i++)
        steady_at[i] = i * 1000;
    struct events steady = {kv, "whatsapp:d", 60, 60000, t0, steady_at, 16, {0}, 0, 0};
    assert_int_equal(lucy_store_write(store, run_events, &steady, 0), 0);
    for (int i = 0; i < 16; i++)
        assert_true(steady.allowed[i]);

    lucy_kv_close(kv);
    lucy_store_close(store);
    remove_dir(dir);
}

static void test_ratelimit_in_write_unsupported(void **state)
{
    (void)state;
    /* a shared backend keeps its state on the server: the wrapper refuses,
     * typed, and still answers by LUCY_RATE_LIMIT_ON_ERROR (deny here).
     * Nothing listens on port 1; the redis backend opens all the same. */
    struct lucy_kv_options o = {.redis_url = "redis://127.0.0.1:1/0", .rate_limit_deny = 1};
    struct lucy_kv *kv;
    struct lucy_kv_error e;
    assert_int_equal(lucy_kv_open(&o, &kv, &e), 0);
    assert_false(lucy_kv_caps(kv) & LUCY_KV_CAP_IN_STORE);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    struct lucy_kv_rate rate = {3, 60000, 3, 0};
    struct lucy_kv_rate_result r;
    assert_int_equal(lucy_kv_ratelimit_in_write(kv, db, "whatsapp:a", &rate, &r, &e), LUCY_EINVAL);
    assert_int_equal(e.kind, LUCY_KV_ERR_INVALID);
    assert_true(r.from_policy);
    assert_false(r.allowed);
    sqlite3_close(db);
    lucy_kv_close(kv);
}

/* ---- the one title rule (document.c) ------------------------------------- */

struct titles {
    const char *step; /* SQL run first (contact changes) */
    char title[64];   /* out: the indexed title of m1 */
    char text[64];    /* out: its text */
};

static int titles_write(sqlite3 *db, void *arg)
{
    struct titles *t = arg;
    if (sqlite3_exec(db, t->step, NULL, NULL, NULL) != SQLITE_OK)
        return LUCY_ECORRUPT;
    int rc = lucy_wa_index_message(db, "m1", "hello");
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT title, text FROM documents WHERE id = 'm1'", -1, &st,
                           NULL) != SQLITE_OK)
        return LUCY_ECORRUPT;
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(t->title, sizeof t->title, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(t->text, sizeof t->text, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return 0;
}

static void test_message_title(void **state)
{
    (void)state;
    char dir[64], err[256];
    make_temp_dir(dir, sizeof dir);
    struct lucy_store *store;
    assert_int_equal(lucy_store_open(dir, &store, err, sizeof err), 0);
    /* no contact row: the sender's id; then the profile name; then the
     * user's alias, which wins; clearing it goes back to the profile */
    static const struct {
        const char *step, *want;
    } rows[] = {
        {"INSERT INTO wa_inbox_bodies VALUES (1, x'00', 0, x'00');"
         "INSERT INTO wa_messages (wamid, body_id, sender, type, known_type, timestamp_s, raw, "
         "received_at_ms) VALUES ('m1', 1, '4915', 'text', 1, 1700000000, '{}', 0)",
         "4915"},
        {"INSERT INTO wa_contacts (id, profile_name, first_seen_ms, updated_at_ms) "
         "VALUES ('4915', 'Alex', 0, 0)",
         "Alex"},
        {"UPDATE wa_contacts SET user_alias = 'Alex (plumber)'", "Alex (plumber)"},
        {"UPDATE wa_contacts SET user_alias = NULL", "Alex"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct titles t = {.step = rows[i].step};
        assert_int_equal(lucy_store_write(store, titles_write, &t, 0), 0);
        assert_string_equal(t.title, rows[i].want);
        assert_string_equal(t.text, "hello");
    }
    assert_string_equal(lucy_wa_voice_note_text(1), "voice note");
    assert_string_equal(lucy_wa_voice_note_text(0), "voice note (not downloaded)");
    char *text = lucy_wa_transcript_text("");
    assert_string_equal(text, "voice note (no speech)");
    free(text);
    text = lucy_wa_transcript_text("call me");
    assert_string_equal(text, "voice note: call me");
    free(text);
    lucy_store_close(store);
    remove_dir(dir);
}

/* ---- aliases shared through the kv ---------------------------------------- */

static void test_alias_pick(void **state)
{
    (void)state;
    struct lucy_wa_alias none = {0, NULL, 0};
    struct lucy_wa_alias local = {1, "Alex (plumber)", 1000};
    struct lucy_wa_alias newer = {1, "Alex B.", 2000};
    struct lucy_wa_alias older = {1, "Al", 500};
    struct lucy_wa_alias same_time = {1, "Other", 1000};
    struct lucy_wa_alias cleared_later = {1, NULL, 3000};
    struct lucy_wa_alias legacy = {1, "bare", 0};
    struct lucy_wa_alias local_pre41 = {1, "kept", 0}; /* set before migration 41 */
    assert_ptr_equal(lucy_wa_alias_pick(&local, &none), &local);
    assert_ptr_equal(lucy_wa_alias_pick(&local, NULL), &local);
    assert_ptr_equal(lucy_wa_alias_pick(&none, &newer), &newer); /* set on another instance */
    assert_ptr_equal(lucy_wa_alias_pick(NULL, &newer), &newer);
    assert_ptr_equal(lucy_wa_alias_pick(&local, &newer), &newer);
    assert_ptr_equal(lucy_wa_alias_pick(&local, &older), &local); /* ours is pending */
    assert_ptr_equal(lucy_wa_alias_pick(&local, &same_time), &local);
    assert_null(lucy_wa_alias_pick(&local, &cleared_later)->alias);
    assert_ptr_equal(lucy_wa_alias_pick(&none, &legacy), &legacy);
    assert_ptr_equal(lucy_wa_alias_pick(&local_pre41, &legacy), &local_pre41);
}

static void test_alias_value(void **state)
{
    (void)state;
    struct lucy_wa_alias a;
    char *owned;
    char *v = lucy_wa_alias_encode("Ren\xc3\xa9 \"R\"", 1700000000123LL);
    assert_non_null(v);
    assert_int_equal(lucy_wa_alias_decode(v, strlen(v), &a, &owned), 0);
    assert_true(a.known);
    assert_string_equal(a.alias, "Ren\xc3\xa9 \"R\"");
    assert_int_equal(a.set_at_ms, 1700000000123LL);
    free(owned);
    free(v);
    /* a cleared alias is a record too: it overrides an older one */
    v = lucy_wa_alias_encode(NULL, 42);
    assert_string_equal(v, "{\"alias\":null,\"set_at_ms\":42}");
    assert_int_equal(lucy_wa_alias_decode(v, strlen(v), &a, &owned), 0);
    assert_true(a.known);
    assert_null(a.alias);
    assert_int_equal(a.set_at_ms, 42);
    free(owned);
    free(v);
    /* a bare value (an older lucy) is the alias, set at an unknown time */
    assert_int_equal(lucy_wa_alias_decode("Sam", 3, &a, &owned), 0);
    assert_true(a.known);
    assert_string_equal(a.alias, "Sam");
    assert_int_equal(a.set_at_ms, 0);
    free(owned);
    char key[LUCY_WA_KEY_MAX];
    assert_int_equal(lucy_wa_alias_key(key, sizeof key, "15550002222"), 0);
    assert_string_equal(key, "wa:user_alias:15550002222");
    assert_int_equal(lucy_wa_profile_key(key, sizeof key, "US.9"), 0);
    assert_string_equal(key, "wa:profile_name:US.9");
    assert_int_equal(lucy_wa_alias_key(key, 8, "15550002222"), LUCY_EINVAL);
}

/* ---- migration 41 --------------------------------------------------------- */

static int64_t query_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_migration_drops_wa_rate_limit(void **state)
{
    (void)state;
    /* a database as the previous release left it: every migration up to
     * 40 applied, wa_rate_limit in use, a contact with a user alias */
    char dir[64], path[128], err[256];
    make_temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/lucy.db", dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                                  "name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < lucy_migrations_count && lucy_migrations[i].version <= 40; i++) {
        char rec[160];
        snprintf(rec, sizeof rec, "INSERT INTO schema_version VALUES (%d, '%s', 0)",
                 lucy_migrations[i].version, lucy_migrations[i].name);
        assert_int_equal(sqlite3_exec(db, lucy_migrations[i].sql, NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, rec, NULL, NULL, NULL), SQLITE_OK);
    }
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO wa_rate_limit VALUES ('whatsapp:x', 1);"
                                  "INSERT INTO wa_contacts (id, user_alias, first_seen_ms, "
                                  "updated_at_ms) VALUES ('15550002222', 'Alex', 1, 1)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    struct lucy_store *store;
    assert_int_equal(lucy_store_open(dir, &store, err, sizeof err), 0);
    lucy_store_close(store);

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        query_int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'wa_rate_limit'"), 0);
    assert_int_equal(query_int(db, "SELECT count(*) FROM schema_version WHERE version = 41"), 1);
    /* the alias is kept; its time is unknown (older than any shared copy) */
    assert_int_equal(query_int(db, "SELECT user_alias_set_at_ms IS NULL AND user_alias = 'Alex' "
                                   "FROM wa_contacts WHERE id = '15550002222'"),
                     1);
    sqlite3_close(db);
    remove_dir(dir);
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
        cmocka_unit_test(test_payload_control_characters_in_ids),
        cmocka_unit_test(test_status_rank),
        cmocka_unit_test(test_ratelimit_in_write),
        cmocka_unit_test(test_ratelimit_in_write_unsupported),
        cmocka_unit_test(test_message_title),
        cmocka_unit_test(test_alias_pick),
        cmocka_unit_test(test_alias_value),
        cmocka_unit_test(test_migration_drops_wa_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
