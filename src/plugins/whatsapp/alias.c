/*
 * alias.c - a contact's names as the lucy instances share them through the
 * kv interface (issue 5; DESIGN §1, §5 "Contacts", §8).
 *
 * Two kv keys per contact (Redis adds its prefix, "lucy:"):
 *   wa:user_alias:<id>    the alias the user set with PUT /contacts/{id}:
 *                         {"alias":"..."|null,"set_at_ms":N} (null = the
 *                         user cleared it; N = wall ms of the PUT)
 *   wa:profile_name:<id>  the latest WhatsApp profile name any instance
 *                         processed, as plain UTF-8
 *
 * Which copy wins. Each instance's local store stays its source of truth
 * (DESIGN §1): PUT writes the local row first and only then publishes it
 * (written, or queued in kv_pending and replayed while the kv refuses). A
 * reader compares the local record of the user's alias with the shared one
 * and takes the NEWER by set_at_ms, ties to the local copy
 * (lucy_wa_alias_pick). So an alias set on instance A shows on instance B
 * as soon as it reached the kv; a write still pending on A (Redis down)
 * does not lose to an older shared value on A; a flushed Redis costs no
 * alias any instance holds locally; and when the kv does not answer at
 * all, readers use the local store alone. Clocks: instances should run NTP;
 * two PUTs for one contact on two instances closer together than their
 * clock skew may resolve in the wrong order.
 *
 * Titles in the search index follow the local row: document.c owns that
 * rule (lucy_wa_contact_title, lucy_wa_contact_retitle).
 *
 * Thread-safe: no state of its own.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../error.h"
#include "../../kv/kv.h"
#include "whatsapp.h"

static const char alias_prefix[] = "wa:user_alias:";
static const char profile_prefix[] = "wa:profile_name:";

int lucy_wa_alias_key(char *buf, size_t len, const char *id)
{
    int n = snprintf(buf, len, "%s%s", alias_prefix, id);
    return n < 0 || (size_t)n >= len ? LUCY_EINVAL : 0;
}

int lucy_wa_profile_key(char *buf, size_t len, const char *id)
{
    int n = snprintf(buf, len, "%s%s", profile_prefix, id);
    return n < 0 || (size_t)n >= len ? LUCY_EINVAL : 0;
}

const struct lucy_wa_alias *lucy_wa_alias_pick(const struct lucy_wa_alias *local,
                                               const struct lucy_wa_alias *shared)
{
    if (!shared || !shared->known)
        return local;
    if (!local || !local->known)
        return shared;
    return shared->set_at_ms > local->set_at_ms ? shared : local;
}

char *lucy_wa_alias_encode(const char *alias, int64_t set_at_ms)
{
    json_t *v = json_pack("{s:o,s:I}", "alias", alias ? json_string(alias) : json_null(),
                          "set_at_ms", (json_int_t)set_at_ms);
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    return s;
}

int lucy_wa_alias_decode(const char *value, size_t len, struct lucy_wa_alias *out, char **owned)
{
    memset(out, 0, sizeof *out);
    *owned = NULL;
    json_t *v = json_loadb(value, len, 0, NULL);
    json_t *alias = json_object_get(v, "alias");
    json_t *at = json_object_get(v, "set_at_ms");
    if (json_is_object(v) && (json_is_string(alias) || json_is_null(alias)) &&
        json_is_integer(at)) {
        out->set_at_ms = json_integer_value(at);
        if (json_is_string(alias) && !(*owned = strdup(json_string_value(alias)))) {
            json_decref(v);
            return LUCY_ENOMEM;
        }
    } else if (!(*owned = strndup(value, len))) {
        /* not ours: an older lucy stored the bare alias; it is the alias,
         * set at an unknown time (older than any local record) */
        json_decref(v);
        return LUCY_ENOMEM;
    }
    json_decref(v);
    out->known = 1;
    out->alias = *owned && **owned ? *owned : NULL;
    return 0;
}

int lucy_wa_shared_names_get(struct lucy_kv *kv, const char *const *ids, size_t n, int profiles,
                             struct lucy_wa_shared_names *out, int timeout_ms)
{
    memset(out, 0, n * sizeof *out);
    if (!kv)
        return LUCY_EUNAVAIL;
    if (n == 0)
        return 0;
    size_t per = profiles ? 2 : 1;
    char **keys = calloc(n * per, sizeof *keys);
    char **values = calloc(n * per, sizeof *values);
    size_t *lens = calloc(n * per, sizeof *lens);
    int rc = keys && values && lens ? 0 : LUCY_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t klen = strlen(ids[i]) + sizeof profile_prefix;
        keys[i * per] = malloc(klen);
        if (profiles)
            keys[i * per + 1] = malloc(klen);
        if (!keys[i * per] || (profiles && !keys[i * per + 1]))
            rc = LUCY_ENOMEM;
        else {
            lucy_wa_alias_key(keys[i * per], klen, ids[i]);
            if (profiles)
                lucy_wa_profile_key(keys[i * per + 1], klen, ids[i]);
        }
    }
    if (rc == 0)
        rc = lucy_kv_get_many(kv, (const char *const *)keys, n * per, values, lens, timeout_ms,
                              NULL);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct lucy_wa_shared_names *s = &out[i];
        char *a = values[i * per];
        if (a)
            rc = lucy_wa_alias_decode(a, lens[i * per], &s->alias, &s->alias_buf);
        if (profiles && values[i * per + 1] && *values[i * per + 1]) {
            s->profile_name = values[i * per + 1]; /* moved */
            values[i * per + 1] = NULL;
        }
    }
    for (size_t i = 0; i < n * per; i++) {
        if (keys)
            free(keys[i]);
        if (values)
            free(values[i]);
    }
    free(keys);
    free(values);
    free(lens);
    if (rc)
        lucy_wa_shared_names_free(out, n);
    return rc;
}

void lucy_wa_shared_names_free(struct lucy_wa_shared_names *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        free(s[i].alias_buf);
        free(s[i].profile_name);
        memset(&s[i], 0, sizeof s[i]);
    }
}

int lucy_wa_alias_publish(struct lucy_kv *kv, const char *id, const char *alias, int64_t set_at_ms)
{
    if (!kv)
        return LUCY_EUNAVAIL;
    char key[LUCY_WA_KEY_MAX];
    if (lucy_wa_alias_key(key, sizeof key, id) != 0)
        return LUCY_EINVAL;
    char *value = lucy_wa_alias_encode(alias, set_at_ms);
    if (!value)
        return LUCY_ENOMEM;
    int rc = lucy_kv_set_or_queue(kv, key, value, strlen(value), NULL, 0, NULL);
    free(value);
    return rc;
}
