/*
 * payload.c - the WhatsApp Cloud API webhook body, parsed with jansson.
 *
 * Shape (Meta for Developers, "WhatsApp Cloud API: Webhooks components";
 * examples in tests/fixtures/whatsapp/):
 *
 *   {"object":"whatsapp_business_account",
 *    "entry":[{"id":WABA, "changes":[{"field":"messages", "value":{
 *        "metadata":{"phone_number_id":...},
 *        "contacts":[{"profile":{"name":...},"wa_id":... | "user_id":...}],
 *        "messages":[{"id":wamid,"from":wa_id,"timestamp":"unix s",
 *                     "type":"text","text":{"body":...}}, ...],
 *        "statuses":[{"id":wamid,"status":"read","timestamp":...,
 *                     "recipient_id":...}, ...]}}]}]}
 *
 * Every entry[], changes[], messages[], statuses[] and contacts[] element
 * is visited; a change may carry any of them. Elements that are not
 * objects or have no id are counted as malformed and left in the raw body
 * (which the inbox always stores). Message types are a table (DESIGN §8);
 * an unknown type is kept with its raw JSON and counted.
 *
 * Usernames (2026): a sender may come with a business-scoped `user_id`
 * (`from_user_id` on the message, `user_id` in contacts[]) and no `wa_id`;
 * the contact key is then the user id.
 *
 * Ids are keys: wamids de-duplicate deliveries, wa_ids and user ids name
 * contacts, a status's id and value are its key. The body is parsed with
 * JSON_ALLOW_NUL (a text may hold "\u0000"), but SQLite binds and
 * strcmp() stop at the first NUL, so "wamid.X\u0000A" and "wamid.X\u0000B"
 * would be one message. An id with a NUL or any other control character
 * is therefore refused: the whole body is a 400 naming the field (id_ok),
 * nothing is stored. Meta never sends such ids.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../error.h"
#include "whatsapp.h"

/* ---- text of a message, by type ------------------------------------------ */

typedef void (*text_fn)(json_t *msg, json_t *part, FILE *out);

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && *s ? s : NULL;
}

/* Writes the non-NULL strings separated by sep. */
static void join(FILE *out, const char *sep, const char *const *parts, size_t n)
{
    int first = 1;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i])
            continue;
        fprintf(out, "%s%s", first ? "" : sep, parts[i]);
        first = 0;
    }
}

static void text_text(json_t *msg, json_t *part, FILE *out)
{
    (void)msg;
    const char *body = str(part, "body");
    if (body)
        fputs(body, out);
}

static void text_audio(json_t *msg, json_t *part, FILE *out)
{
    (void)msg;
    fputs(json_is_false(json_object_get(part, "voice")) ? "audio message" : "voice note", out);
}

/* image, video, document, sticker: the kind, then caption and file name. */
static void text_media(json_t *msg, json_t *part, FILE *out)
{
    const char *parts[] = {str(part, "caption"), str(part, "filename")};
    fprintf(out, "%s", str(msg, "type"));
    if (parts[0] || parts[1]) {
        fputs(": ", out);
        join(out, " ", parts, 2);
    }
}

static void text_location(json_t *msg, json_t *part, FILE *out)
{
    (void)msg;
    const char *parts[] = {str(part, "name"), str(part, "address")};
    fputs("location", out);
    if (parts[0] || parts[1]) {
        fputs(": ", out);
        join(out, ", ", parts, 2);
    }
    json_t *lat = json_object_get(part, "latitude"), *lon = json_object_get(part, "longitude");
    if (json_is_number(lat) && json_is_number(lon))
        fprintf(out, " (%.6f, %.6f)", json_number_value(lat), json_number_value(lon));
}

/* `contacts` messages carry an array of shared vCards. */
static void text_contacts(json_t *msg, json_t *part, FILE *out)
{
    (void)part;
    fputs("shared contact", out);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(msg, "contacts"), i, c)
    {
        const char *name = str(json_object_get(c, "name"), "formatted_name");
        fprintf(out, "%s%s", i ? ", " : ": ", name ? name : "(no name)");
        size_t j;
        json_t *ph;
        json_array_foreach(json_object_get(c, "phones"), j, ph)
        {
            const char *p = str(ph, "phone");
            if (p)
                fprintf(out, " %s", p);
        }
    }
}

static void text_reaction(json_t *msg, json_t *part, FILE *out)
{
    (void)msg;
    const char *emoji = str(part, "emoji");
    fprintf(out, "reaction%s%s", emoji ? " " : " removed", emoji ? emoji : "");
}

static void text_interactive(json_t *msg, json_t *part, FILE *out)
{
    (void)msg;
    static const char *const replies[] = {"button_reply", "list_reply", "nfm_reply"};
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
        json_t *r = json_object_get(part, replies[i]);
        if (!json_is_object(r))
            continue;
        const char *parts[] = {str(r, "title"), str(r, "description"), str(r, "body")};
        join(out, " ", parts, 3);
        return;
    }
}

static void text_button(json_t *msg, json_t *part, FILE *out)
{
    (void)msg;
    const char *t = str(part, "text");
    fputs(t ? t : "", out);
}

/* DESIGN §8's message types: the key holding the type's object has the
 * type's name in Meta's payloads. */
static const struct {
    const char *type; /* messages[].type */
    text_fn text;     /* how its searchable text is made */
} types[] = {
    {"text", text_text},         {"audio", text_audio},
    {"image", text_media},       {"video", text_media},
    {"document", text_media},    {"sticker", text_media},
    {"location", text_location}, {"contacts", text_contacts},
    {"reaction", text_reaction}, {"interactive", text_interactive},
    {"button", text_button},
};
#define N_TYPES (sizeof types / sizeof types[0])

int lucy_wa_type_known(const char *type)
{
    for (size_t i = 0; type && i < N_TYPES; i++)
        if (strcmp(types[i].type, type) == 0)
            return 1;
    return 0;
}

char *lucy_wa_message_text(json_t *msg)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    if (!out)
        return NULL;
    const char *type = str(msg, "type");
    for (size_t i = 0; type && i < N_TYPES; i++) {
        if (strcmp(types[i].type, type) == 0) {
            types[i].text(msg, json_object_get(msg, type), out);
            break;
        }
    }
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* ---- statuses ------------------------------------------------------------ */

int lucy_wa_status_rank(const char *status)
{
    static const struct {
        const char *name;
        int rank;
    } ranks[] = {
        {"sent", 1}, {"delivered", 2}, {"read", 3}, {"played", 4}, {"failed", 5},
    };
    for (size_t i = 0; status && i < sizeof ranks / sizeof ranks[0]; i++)
        if (strcmp(ranks[i].name, status) == 0)
            return ranks[i].rank;
    return 0;
}

/* ---- the body ------------------------------------------------------------ */

static int64_t timestamp_of(json_t *obj)
{
    json_t *t = json_object_get(obj, "timestamp");
    if (json_is_integer(t))
        return json_integer_value(t);
    const char *s = json_string_value(t);
    if (!s)
        return 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    return end != s && *end == '\0' && v > 0 ? (int64_t)v : 0;
}

static int grow(void **array, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap * 2 : 8;
    while (n < need)
        n *= 2;
    void *a = realloc(*array, n * elem);
    if (!a)
        return LUCY_ENOMEM;
    memset((char *)a + *cap * elem, 0, (n - *cap) * elem);
    *array = a;
    *cap = n;
    return 0;
}

struct parse {
    struct lucy_wa_payload *p;
    size_t cap_messages, cap_statuses;
    size_t entry, change; /* where the walk is, for error messages */
    char *err;            /* the caller's reason buffer */
    size_t errlen;
};

/* Checks that obj[key], when it is a string, can serve as an id: no NUL
 * (jansson keeps it, SQLite and strcmp would cut the id there) and no
 * other control character (U+0000..U+001F, U+007F). 0, or LUCY_EINVAL
 * with the field's path and what was wrong in ps->err. what says what
 * the field is ("the wamid"). */
static int id_ok(struct parse *ps, json_t *obj, const char *array, size_t index, const char *key,
                 const char *what)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return 0;
    const unsigned char *s = (const unsigned char *)json_string_value(v);
    size_t n = json_string_length(v);
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 0x20 && s[i] != 0x7f)
            continue;
        char where[96] = "";
        if (array)
            snprintf(where, sizeof where, ".%s[%zu]", array, index);
        snprintf(ps->err, ps->errlen,
                 "entry[%zu].changes[%zu].value%s.%s (%s) contains the control character "
                 "U+%04X at byte %zu; ids may not contain control characters",
                 ps->entry, ps->change, where, key, what, s[i], i);
        return LUCY_EINVAL;
    }
    return 0;
}

/* The profile name contacts[] gives for a wa_id or user id, or NULL. */
static const char *profile_name(json_t *contacts, const char *wa_id, const char *user_id)
{
    size_t i;
    json_t *c;
    json_array_foreach(contacts, i, c)
    {
        const char *cw = str(c, "wa_id"), *cu = str(c, "user_id");
        if ((wa_id && cw && strcmp(cw, wa_id) == 0) || (user_id && cu && strcmp(cu, user_id) == 0))
            return str(json_object_get(c, "profile"), "name");
    }
    /* A change about one sender usually has one contact: use it when it
     * names nobody else. */
    if (json_array_size(contacts) == 1 && !str(json_array_get(contacts, 0), "wa_id") &&
        !str(json_array_get(contacts, 0), "user_id"))
        return str(json_object_get(json_array_get(contacts, 0), "profile"), "name");
    return NULL;
}

static int add_message(struct parse *ps, json_t *m, size_t index, json_t *value)
{
    struct lucy_wa_payload *p = ps->p;
    int rc = id_ok(ps, m, "messages", index, "id", "the wamid");
    if (rc == 0)
        rc = id_ok(ps, m, "messages", index, "from", "the sender's wa_id");
    if (rc == 0)
        rc = id_ok(ps, m, "messages", index, "from_user_id", "the sender's user_id");
    if (rc)
        return rc;
    const char *wamid = str(m, "id");
    if (!json_is_object(m) || !wamid) {
        p->n_malformed++;
        return 0;
    }
    if (grow((void **)&p->messages, &ps->cap_messages, p->n_messages + 1, sizeof *p->messages))
        return LUCY_ENOMEM;
    struct lucy_wa_message *msg = &p->messages[p->n_messages];
    json_t *contacts = json_object_get(value, "contacts");
    msg->wamid = wamid;
    msg->wa_id = str(m, "from");
    msg->user_id = str(m, "from_user_id");
    if (!msg->user_id && !msg->wa_id && json_array_size(contacts) == 1)
        msg->user_id = str(json_array_get(contacts, 0), "user_id");
    msg->sender = msg->wa_id ? msg->wa_id : msg->user_id ? msg->user_id : "unknown";
    msg->type = str(m, "type") ? str(m, "type") : "unknown";
    msg->known_type = lucy_wa_type_known(msg->type);
    msg->timestamp_s = timestamp_of(m);
    msg->profile_name = profile_name(contacts, msg->wa_id, msg->user_id);
    msg->phone_number_id = str(json_object_get(value, "metadata"), "phone_number_id");
    msg->raw = json_dumps(m, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!msg->raw)
        return LUCY_ENOMEM;
    p->n_messages++;
    p->n_unknown_types += !msg->known_type;
    return 0;
}

static int add_status(struct parse *ps, json_t *s, size_t index)
{
    struct lucy_wa_payload *p = ps->p;
    static const struct {
        const char *key, *what;
    } ids[] = {
        {"id", "the status id, an outgoing wamid"},
        {"status", "the status"},
        {"recipient_id", "the recipient's wa_id"},
        {"recipient_user_id", "the recipient's user_id"},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int rc = id_ok(ps, s, "statuses", index, ids[i].key, ids[i].what);
        if (rc)
            return rc;
    }
    const char *id = str(s, "id"), *status = str(s, "status");
    if (!json_is_object(s) || !id || !status) {
        p->n_malformed++;
        return 0;
    }
    if (grow((void **)&p->statuses, &ps->cap_statuses, p->n_statuses + 1, sizeof *p->statuses))
        return LUCY_ENOMEM;
    struct lucy_wa_status *st = &p->statuses[p->n_statuses];
    st->id = id;
    st->status = status;
    st->recipient_id =
        str(s, "recipient_id") ? str(s, "recipient_id") : str(s, "recipient_user_id");
    st->timestamp_s = timestamp_of(s);
    st->raw = json_dumps(s, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (!st->raw)
        return LUCY_ENOMEM;
    p->n_statuses++;
    return 0;
}

static int walk_value(struct parse *ps, json_t *value)
{
    size_t i;
    json_t *x;
    int rc = id_ok(ps, json_object_get(value, "metadata"), NULL, 0, "phone_number_id",
                   "the business phone number id");
    json_array_foreach(json_object_get(value, "contacts"), i, x)
    {
        if (rc == 0)
            rc = id_ok(ps, x, "contacts", i, "wa_id", "a contact's wa_id");
        if (rc == 0)
            rc = id_ok(ps, x, "contacts", i, "user_id", "a contact's user_id");
    }
    json_array_foreach(json_object_get(value, "messages"), i, x)
    {
        if (rc == 0)
            rc = add_message(ps, x, i, value);
    }
    json_array_foreach(json_object_get(value, "statuses"), i, x)
    {
        if (rc == 0)
            rc = add_status(ps, x, i);
    }
    return rc;
}

/* At most this many JSON values (counted roughly: commas, objects and
 * arrays, in strings too) in one body. Meta posts at most 1,000 updates
 * (FACTS.md), a few dozen values each; parsed, every value costs jansson
 * ~100-200 bytes, so a 3 MiB body of `{},{},...` would otherwise take
 * ~250 MB per request (found by the fault-injection review). */
#define MAX_JSON_VALUES 200000

/* A rough upper bound of the values in body (see MAX_JSON_VALUES). */
static size_t json_values_bound(const char *body, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += body[i] == ',' || body[i] == '{' || body[i] == '[';
    return n;
}

int lucy_wa_payload_parse(const char *body, size_t len, struct lucy_wa_payload *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (json_values_bound(body, len) > MAX_JSON_VALUES) {
        snprintf(err, errlen,
                 "the body holds more than %d JSON values; Meta posts at most 1,000 updates at "
                 "once",
                 MAX_JSON_VALUES);
        return LUCY_EINVAL;
    }
    json_error_t jerr;
    out->root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
    if (!out->root) {
        snprintf(err, errlen, "the body is not valid JSON (line %d, column %d: %s)", jerr.line,
                 jerr.column, jerr.text);
        return LUCY_EINVAL;
    }
    json_t *entries = json_object_get(out->root, "entry");
    if (!json_is_object(out->root) || !json_is_array(entries)) {
        snprintf(err, errlen,
                 "the body is not a WhatsApp webhook object: expected "
                 "{\"object\":\"whatsapp_business_account\",\"entry\":[...]}");
        return LUCY_EINVAL;
    }
    struct parse ps = {.p = out, .err = err, .errlen = errlen};
    size_t i, j;
    json_t *entry, *change;
    json_array_foreach(entries, i, entry)
    {
        json_array_foreach(json_object_get(entry, "changes"), j, change)
        {
            json_t *value = json_object_get(change, "value");
            if (!json_is_object(value))
                continue;
            ps.entry = i;
            ps.change = j;
            int rc = walk_value(&ps, value);
            if (rc == LUCY_ENOMEM)
                snprintf(err, errlen, "out of memory parsing the body");
            if (rc)
                return rc;
        }
    }
    return 0;
}

void lucy_wa_payload_free(struct lucy_wa_payload *p)
{
    for (size_t i = 0; i < p->n_messages; i++)
        free(p->messages[i].raw);
    for (size_t i = 0; i < p->n_statuses; i++)
        free(p->statuses[i].raw);
    free(p->messages);
    free(p->statuses);
    json_decref(p->root);
    memset(p, 0, sizeof *p);
}
