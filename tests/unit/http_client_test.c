/* http_client_test.c - src/http/client.c against lucy's own HTTP server on
 * loopback: status and body, the bearer token, the reply cap, the deadline,
 * a sink, no answer at all; and the route arg reaching the handler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "error.h"
#include "http/client.h"
#include "http/http.h"

struct fixture {
    struct lucy_http *http;
    int port;
    char base[64];
    int route_state; /* reached by the handlers through req->arg */
};

static void echo(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    int *state = req->arg;
    const char *auth = lucy_http_header(req, "Authorization");
    json_t *o = json_pack("{s:s, s:s?, s:i, s:s%}", "method", req->method, "auth", auth, "arg",
                          state ? *state : -1, "body", req->body ? req->body : "", req->body_len);
    lucy_http_reply_json(resp, 200, o);
}

static void big(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    (void)req;
    size_t n = 100000;
    char *s = malloc(n + 1);
    memset(s, 'x', n);
    s[n] = '\0';
    lucy_http_reply_text(resp, 200, "text/plain", s, n);
    free(s);
}

static void slow(struct lucy_http_request *req, struct lucy_http_response *resp)
{
    (void)req;
    usleep(800 * 1000);
    lucy_http_reply_error(resp, LUCY_HTTP_DEPENDENCY_UNAVAILABLE, 1, "slow on purpose");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    f->route_state = 42;
    static const struct lucy_route routes[] = {
        {"POST", "/echo", echo, 0, 0, NULL},
        {"GET", "/echo", echo, 0, 0, NULL},
        {"GET", "/big", big, 0, 0, NULL},
        {"GET", "/slow", slow, 0, 0, NULL},
    };
    f->http = lucy_http_new(NULL, NULL, 2, 30);
    assert_non_null(f->http);
    assert_int_equal(lucy_http_add_routes(f->http, routes, 4, &f->route_state), 0);
    char err[256];
    assert_int_equal(lucy_http_start(f->http, "127.0.0.1", 0, &f->port, err, sizeof err), 0);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    lucy_http_stop(f->http);
    lucy_http_free(f->http);
    free(f);
    return 0;
}

static void post_with_bearer_and_route_arg(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/echo", f->base);
    struct lucy_http_call c = {
        .url = url, .bearer = "s3cret", .body = "{\"a\":1}", .body_len = 7, .timeout_ms = 5000};
    assert_int_equal(lucy_http_client_perform(NULL, &c), 0);
    assert_int_equal(c.status, 200);
    json_t *o = json_loadb(c.reply, c.reply_len, 0, NULL);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(o, "auth")), "Bearer s3cret");
    assert_string_equal(json_string_value(json_object_get(o, "body")), "{\"a\":1}");
    assert_int_equal(json_integer_value(json_object_get(o, "arg")), 42);
    json_decref(o);
    lucy_http_call_free(&c);
    lucy_http_call_free(&c); /* twice is safe */
}

static void pool_reuses_handles(void **state)
{
    struct fixture *f = *state;
    struct lucy_http_pool pool = LUCY_HTTP_POOL_INIT;
    char url[128];
    snprintf(url, sizeof url, "%s/echo", f->base);
    for (int i = 0; i < 3; i++) {
        struct lucy_http_call c = {.url = url, .timeout_ms = 5000};
        assert_int_equal(lucy_http_pool_perform(&pool, &c), 0);
        assert_int_equal(c.status, 200);
        assert_int_equal(pool.n_idle, 1); /* given back after each answer */
        lucy_http_call_free(&c);
    }
    lucy_http_pool_free(&pool);
    assert_int_equal(pool.n_idle, 0);
}

static void reply_cap(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/big", f->base);
    struct lucy_http_call c = {.url = url, .reply_cap = 1000, .timeout_ms = 5000};
    assert_int_equal(lucy_http_client_perform(NULL, &c), LUCY_EUNAVAIL);
    assert_true(c.too_big);
    assert_non_null(strstr(c.error, "larger than 1000 bytes"));
    lucy_http_call_free(&c);
}

static int count_sink(void *arg, const char *data, size_t n)
{
    (void)data;
    *(size_t *)arg += n;
    return 0;
}

static int refuse_sink(void *arg, const char *data, size_t n)
{
    (void)arg, (void)data, (void)n;
    return 1;
}

static void sink_streams_or_aborts(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/big", f->base);
    size_t got = 0;
    struct lucy_http_call c = {.url = url, .sink = count_sink, .sink_arg = &got};
    assert_int_equal(lucy_http_client_perform(NULL, &c), 0);
    assert_int_equal(got, 100000);
    assert_null(c.reply);
    struct lucy_http_call r = {.url = url, .sink = refuse_sink};
    assert_int_equal(lucy_http_client_perform(NULL, &r), LUCY_EUNAVAIL);
    assert_non_null(strstr(r.error, "could not be stored"));
    lucy_http_call_free(&r);
}

static void deadline_and_no_answer(void **state)
{
    struct fixture *f = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/slow", f->base);
    int64_t t0 = lucy_mono_ms();
    struct lucy_http_call c = {.url = url, .timeout_ms = 200};
    assert_int_equal(lucy_http_client_perform(NULL, &c), LUCY_ETIMEDOUT);
    assert_true(lucy_mono_ms() - t0 < 700);
    assert_int_equal(c.status, 0);
    lucy_http_call_free(&c);
    /* an answer with an error status is still an answer */
    struct lucy_http_call s = {.url = url, .timeout_ms = 5000};
    assert_int_equal(lucy_http_client_perform(NULL, &s), 0);
    assert_int_equal(s.status, 503);
    lucy_http_call_free(&s);
    /* port 1 on loopback: refused */
    struct lucy_http_call n = {.url = "http://127.0.0.1:1/", .timeout_ms = 2000};
    assert_int_equal(lucy_http_client_perform(NULL, &n), LUCY_EUNAVAIL);
    assert_true(n.error[0] != '\0');
    lucy_http_call_free(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(post_with_bearer_and_route_arg),
        cmocka_unit_test(pool_reuses_handles),
        cmocka_unit_test(reply_cap),
        cmocka_unit_test(sink_streams_or_aborts),
        cmocka_unit_test(deadline_and_no_answer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
