/* people_test.c - the people rules (src/people/) on a real store in a temp
 * dir: display-name precedence, observe (create, find, wa_id -> phone,
 * the automatic link both ways, names refused and cut), merge / split /
 * alias and their undo restoring exactly the JSON of both persons, and the
 * undo refused while a later entry depends on it. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "error.h"
#include "people/people.h"
#include "store/store.h"

static char dir[64];
static struct lucy_store *store;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/lucy-people-test-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char err[256];
    assert_int_equal(lucy_store_open(dir, &store, err, sizeof err), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lucy_store_close(store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

/* ---- helpers: one call per store write ------------------------------------ */

struct call {
    const char *kind, *value, *name, *source; /* observe */
    int64_t id, other, seq, person;           /* merge, split, undo; out */
    const char *op;                           /* undo: out */
    char why[256];
    int rc;
};

static int w_observe(sqlite3 *db, void *arg)
{
    struct call *c = arg;
    return lucy_people_observe(db, c->kind, c->value, c->name, c->source, &c->person);
}

static int64_t observe(const char *kind, const char *value, const char *name, const char *source)
{
    struct call c = {.kind = kind, .value = value, .name = name, .source = source};
    assert_int_equal(lucy_store_write(store, w_observe, &c, 0), 0);
    return c.person;
}

static int w_merge(sqlite3 *db, void *arg)
{
    struct call *c = arg;
    return lucy_people_merge(db, c->id, c->other, 0, &c->seq);
}

static int w_split(sqlite3 *db, void *arg)
{
    struct call *c = arg;
    return lucy_people_split(db, c->id, c->kind, c->value, &c->person, &c->seq);
}

static int w_alias(sqlite3 *db, void *arg)
{
    struct call *c = arg;
    return lucy_people_set_alias(db, c->id, c->name, 1234, &c->seq);
}

static int w_undo(sqlite3 *db, void *arg)
{
    struct call *c = arg;
    return lucy_people_undo(db, c->seq, &c->person, &c->op, c->why, sizeof c->why);
}

static int undo(int64_t seq, char *why)
{
    struct call c = {.seq = seq};
    int rc = lucy_store_write(store, w_undo, &c, 0);
    if (why)
        strcpy(why, c.why);
    return rc;
}

struct get {
    int64_t id;
    json_t *out;
};

static int r_get(sqlite3 *db, void *arg)
{
    struct get *g = arg;
    return lucy_people_json(db, g->id, 1, &g->out);
}

/* GET /people/{id} as a string (NULL: no such person); caller frees. */
static char *person_text(int64_t id)
{
    struct get g = {.id = id};
    int rc = lucy_store_read(store, r_get, &g);
    if (rc == LUCY_ENOTFOUND)
        return NULL;
    assert_int_equal(rc, 0);
    char *s = json_dumps(g.out, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(g.out);
    return s;
}

static json_t *person(int64_t id)
{
    struct get g = {.id = id};
    assert_int_equal(lucy_store_read(store, r_get, &g), 0);
    return g.out;
}

static const char *name_of(json_t *p)
{
    return json_string_value(json_object_get(p, "name"));
}

/* ---- the display-name rule ------------------------------------------------ */

static void display_name_precedence(void **state)
{
    (void)state;
    char out[64];
    struct lucy_people_ident ids[] = {
        {"user_id", "US.1"}, {"wa_id", "14155550123"}, {"phone", "+14155550123"}};
    struct lucy_people_name names[] = {
        {"Caller", "caller_name", 9},   {"Log", "call_log_name", 1},
        {"Old pro", "profile_name", 1}, {"New pro", "profile_name", 5},
        {"Contact", "contact_name", 1}, {"Alias", "alias", 1},
        {"File", "file_name", 99},
    };
    /* each source wins over those after it, whatever the times */
    assert_string_equal(lucy_people_display_pick(names, 7, ids, 3, 1, out, sizeof out), "alias");
    assert_string_equal(out, "Alias");
    assert_string_equal(lucy_people_display_pick(names, 5, ids, 3, 1, out, sizeof out),
                        "contact_name");
    assert_string_equal(lucy_people_display_pick(names, 4, ids, 3, 1, out, sizeof out),
                        "profile_name");
    assert_string_equal(out, "New pro"); /* newest within a source */
    assert_string_equal(lucy_people_display_pick(names, 2, ids, 3, 1, out, sizeof out),
                        "call_log_name");
    assert_string_equal(lucy_people_display_pick(names, 1, ids, 3, 1, out, sizeof out),
                        "caller_name");
    assert_string_equal(lucy_people_display_pick(&names[6], 1, ids, 3, 1, out, sizeof out),
                        "file_name");
    /* no names: the formatted number, then +wa_id, user_id, the id */
    assert_string_equal(lucy_people_display_pick(NULL, 0, ids, 3, 1, out, sizeof out), "phone");
    assert_string_equal(out, "+1 415-555-0123");
    assert_string_equal(lucy_people_display_pick(NULL, 0, ids, 2, 1, out, sizeof out), "wa_id");
    assert_string_equal(out, "+14155550123");
    assert_string_equal(lucy_people_display_pick(NULL, 0, ids, 1, 1, out, sizeof out), "user_id");
    assert_string_equal(out, "US.1");
    assert_string_equal(lucy_people_display_pick(NULL, 0, NULL, 0, 42, out, sizeof out), "id");
    assert_string_equal(out, "person 42");
    /* an unknown source or an empty name is never picked */
    struct lucy_people_name odd[] = {{"X", "nickname", 1}, {"", "alias", 1}};
    assert_string_equal(lucy_people_display_pick(odd, 2, ids, 3, 1, out, sizeof out), "phone");
}

static void values_are_checked(void **state)
{
    (void)state;
    assert_int_equal(lucy_people_value_check("phone", "+14155550123"), 0);
    assert_int_equal(lucy_people_value_check("phone", "14155550123"), LUCY_EINVAL);
    assert_int_equal(lucy_people_value_check("phone", "+1415555012345678"), LUCY_EINVAL);
    assert_int_equal(lucy_people_value_check("wa_id", "14155550123"), 0);
    assert_int_equal(lucy_people_value_check("wa_id", "+14155550123"), LUCY_EINVAL);
    assert_int_equal(lucy_people_value_check("user_id", "US.13491208655302741918"), 0);
    assert_int_equal(lucy_people_value_check("user_id", "a b"), LUCY_EINVAL);
    assert_int_equal(lucy_people_value_check("email", "a@b"), LUCY_EINVAL);
    assert_int_equal(lucy_people_value_check("wa_id", ""), LUCY_EINVAL);
}

/* ---- observe -------------------------------------------------------------- */

static void observe_creates_finds_and_links_the_phone(void **state)
{
    (void)state;
    int64_t a = observe("wa_id", "14155550123", "Alex", "profile_name");
    assert_true(a > 0);
    assert_int_equal(observe("wa_id", "14155550123", "Alex", "profile_name"), a);
    /* the wa_id brought its phone: a call of that number is Alex */
    assert_int_equal(observe("phone", "+14155550123", "Alex Doe", "contact_name"), a);
    json_t *p = person(a);
    assert_int_equal(json_array_size(json_object_get(p, "identifiers")), 2);
    assert_string_equal(name_of(p), "Alex Doe"); /* contact name > profile name */
    assert_int_equal(json_array_size(json_object_get(p, "names")), 2);
    json_decref(p);
    /* a user_id is not a number: no phone */
    int64_t u = observe("user_id", "US.99", NULL, NULL);
    p = person(u);
    assert_int_equal(json_array_size(json_object_get(p, "identifiers")), 1);
    assert_string_equal(name_of(p), "US.99");
    json_decref(p);
    /* refused inputs write nothing */
    struct call c = {.kind = "wa_id", .value = "not digits"};
    assert_int_equal(lucy_store_write(store, w_observe, &c, 0), LUCY_EINVAL);
    c = (struct call){.kind = "wa_id", .value = "1", .name = "x", .source = "nickname"};
    assert_int_equal(lucy_store_write(store, w_observe, &c, 0), LUCY_EINVAL);
}

static void names_with_control_characters_are_refused_long_ones_cut(void **state)
{
    (void)state;
    int64_t a = observe("wa_id", "442079460018", "bad\nname", "profile_name");
    json_t *p = person(a);
    assert_int_equal(json_array_size(json_object_get(p, "names")), 0);
    assert_string_equal(name_of(p), "+44 20 7946 0018");
    json_decref(p);
    char longname[400];
    memset(longname, 'a', sizeof longname);
    strcpy(longname + LUCY_PEOPLE_NAME_MAX - 1, "\xc3\xa9tail"); /* é across the limit */
    observe("wa_id", "442079460018", longname, "profile_name");
    p = person(a);
    const char *n = name_of(p);
    assert_int_equal(strlen(n), LUCY_PEOPLE_NAME_MAX - 1); /* cut before the é */
    json_decref(p);
}

static void phone_first_then_wa_id_is_an_undoable_automatic_merge(void **state)
{
    (void)state;
    int64_t call = observe("phone", "+14155550199", "From the call", "call_log_name");
    char *before = person_text(call);
    int64_t wa = observe("wa_id", "14155550199", "Profile", "profile_name");
    assert_int_equal(wa, call); /* linked */
    json_t *p = person(call);
    assert_int_equal(json_array_size(json_object_get(p, "identifiers")), 2);
    assert_string_equal(name_of(p), "Profile"); /* profile name > call-log name */
    json_decref(p);
    /* the journal's one entry, an automatic merge: undo it */
    struct call c = {.seq = 1}; /* a fresh store: the first entry */
    assert_int_equal(lucy_store_write(store, w_undo, &c, 0), 0);
    assert_string_equal(c.op, "merge");
    char *after = person_text(call);
    assert_string_equal(after, before);
    free(before), free(after);
}

/* ---- merge, split, alias and undo ----------------------------------------- */

static void merge_then_undo_restores_both_exactly(void **state)
{
    (void)state;
    int64_t a = observe("wa_id", "4930901820", "Anna", "profile_name");
    int64_t b = observe("user_id", "DE.77", "Anna B", "profile_name");
    struct call al = {.id = b, .name = "Anna (work)"};
    assert_int_equal(lucy_store_write(store, w_alias, &al, 0), 0);
    char *a0 = person_text(a), *b0 = person_text(b);
    struct call m = {.id = a, .other = b};
    assert_int_equal(lucy_store_write(store, w_merge, &m, 0), 0);
    assert_null(person_text(b));
    json_t *p = person(a);
    assert_string_equal(name_of(p), "Anna (work)");
    assert_int_equal(json_array_size(json_object_get(p, "identifiers")), 3);
    json_decref(p);
    /* the alias entry came before: undoing it now would skip the merge */
    char why[256];
    assert_int_equal(undo(al.seq, why), LUCY_ECONFLICT);
    assert_non_null(strstr(why, "undo it first"));
    assert_int_equal(undo(m.seq, NULL), 0);
    char *a1 = person_text(a), *b1 = person_text(b);
    assert_string_equal(a1, a0);
    assert_string_equal(b1, b0);
    assert_int_equal(undo(m.seq, why), LUCY_ECONFLICT); /* once */
    assert_non_null(strstr(why, "already"));
    assert_int_equal(undo(9999, NULL), LUCY_ENOTFOUND);
    /* merging with itself or with nobody */
    m = (struct call){.id = a, .other = a};
    assert_int_equal(lucy_store_write(store, w_merge, &m, 0), LUCY_EINVAL);
    m = (struct call){.id = a, .other = 9999};
    assert_int_equal(lucy_store_write(store, w_merge, &m, 0), LUCY_ENOTFOUND);
    free(a0), free(b0), free(a1), free(b1);
}

static void split_takes_the_identifier_and_its_names(void **state)
{
    (void)state;
    int64_t a = observe("wa_id", "14155550142", "Pat", "profile_name");
    char *a0 = person_text(a);
    struct call s = {.id = a, .kind = "wa_id", .value = "14155550142"};
    assert_int_equal(lucy_store_write(store, w_split, &s, 0), 0);
    json_t *n = person(s.person), *p = person(a);
    assert_string_equal(name_of(n), "Pat"); /* the name went with its wa_id */
    assert_string_equal(name_of(p), "+1 415-555-0142");
    json_decref(n), json_decref(p);
    /* the phone alone cannot be split from itself */
    struct call again = {.id = a, .kind = "phone", .value = "+14155550142"};
    assert_int_equal(lucy_store_write(store, w_split, &again, 0), LUCY_EINVAL);
    /* an identifier of another person is not this person's */
    again = (struct call){.id = a, .kind = "wa_id", .value = "14155550142"};
    assert_int_equal(lucy_store_write(store, w_split, &again, 0), LUCY_ENOTFOUND);
    assert_int_equal(undo(s.seq, NULL), 0);
    char *a1 = person_text(a);
    assert_string_equal(a1, a0);
    assert_null(person_text(s.person));
    free(a0), free(a1);
}

static void alias_replaced_cleared_and_undone(void **state)
{
    (void)state;
    int64_t a = observe("wa_id", "14155550177", "Kim", "profile_name");
    struct call one = {.id = a, .name = "K1"}, two = {.id = a, .name = NULL};
    assert_int_equal(lucy_store_write(store, w_alias, &one, 0), 0);
    char *with = person_text(a);
    assert_int_equal(lucy_store_write(store, w_alias, &two, 0), 0);
    json_t *p = person(a);
    assert_string_equal(name_of(p), "Kim");
    json_decref(p);
    assert_int_equal(undo(two.seq, NULL), 0);
    char *back = person_text(a);
    assert_string_equal(back, with);
    free(with), free(back);
}

struct plan {
    char text[2048]; /* the plan's detail lines, joined */
};

static int r_plan(sqlite3 *db, void *arg)
{
    struct plan *pl = arg;
    char sql[2048];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN %s", lucy_people_list_sql);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return LUCY_EIO;
    size_t off = 0;
    while (sqlite3_step(st) == SQLITE_ROW && off < sizeof pl->text - 1)
        off += snprintf(pl->text + off, sizeof pl->text - off, "%s\n",
                        (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    return 0;
}

/* GET /people counts in its own query: each count is an index lookup per
 * person, never a scan of the calls or the messages. */
static void list_counts_use_indexes(void **state)
{
    (void)state;
    struct plan pl = {{0}};
    assert_int_equal(lucy_store_read(store, r_plan, &pl), 0);
    static const char *const uses[] = {"recording_calls_number", "wa_messages_by_sender",
                                       "people_identifiers_by_person"};
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++)
        if (!strstr(pl.text, uses[i]))
            fail_msg("plan does not use %s:\n%s", uses[i], pl.text);
    static const char *const scans[] = {"SCAN recording_calls", "SCAN wa_messages"};
    for (size_t i = 0; i < sizeof scans / sizeof scans[0]; i++)
        if (strstr(pl.text, scans[i]))
            fail_msg("plan has %s:\n%s", scans[i], pl.text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(display_name_precedence),
        cmocka_unit_test(values_are_checked),
        cmocka_unit_test_setup_teardown(observe_creates_finds_and_links_the_phone, setup, teardown),
        cmocka_unit_test_setup_teardown(names_with_control_characters_are_refused_long_ones_cut,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(phone_first_then_wa_id_is_an_undoable_automatic_merge,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(merge_then_undo_restores_both_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(split_takes_the_identifier_and_its_names, setup, teardown),
        cmocka_unit_test_setup_teardown(alias_replaced_cleared_and_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(list_counts_use_indexes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
