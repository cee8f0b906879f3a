/*
 * fuzz_webhook.c - libFuzzer driver for the webhook's parsers (DESIGN §11):
 * the X-Hub-Signature-256 check and the payload parser with the per-type
 * text extraction, on arbitrary bytes.
 *
 * Input layout: the bytes up to the first newline (at most 100) are tried
 * as the signature header, the whole input as the body. Properties checked
 * besides "no crash, no leak, no undefined behaviour": a signature made by
 * lucy_wa_signature_make() always verifies, and the same signature never
 * verifies a body one byte shorter.
 *
 * Built by scripts/fuzz with clang -fsanitize=fuzzer,address,undefined;
 * seeds are the JSON files in tests/fixtures/whatsapp/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plugins/whatsapp/whatsapp.h"

static const char secret[] = "fuzz-app-secret";

static void fuzz_signature(const uint8_t *data, size_t size)
{
    char header[101];
    size_t n = 0;
    while (n < size && n < sizeof header - 1 && data[n] != '\n')
        n++;
    memcpy(header, data, n);
    header[n] = '\0';
    (void)lucy_wa_signature_check(secret, header, data, size);

    char made[80];
    if (lucy_wa_signature_make(secret, data, size, made, sizeof made) != 0)
        abort();
    if (lucy_wa_signature_check(secret, made, data, size) != 0)
        abort();
    if (size > 0 && lucy_wa_signature_check(secret, made, data, size - 1) == 0)
        abort();
}

static void fuzz_payload(const uint8_t *data, size_t size)
{
    struct lucy_wa_payload p;
    char err[256];
    if (lucy_wa_payload_parse((const char *)data, size, &p, err, sizeof err) == 0) {
        for (size_t i = 0; i < p.n_messages; i++) {
            const struct lucy_wa_message *m = &p.messages[i];
            if (!m->wamid || !m->sender || !m->type || !m->raw)
                abort();
            json_t *j = json_loads(m->raw, JSON_ALLOW_NUL, NULL);
            char *text = j ? lucy_wa_message_text(j) : NULL;
            free(text);
            json_decref(j);
            (void)lucy_wa_type_known(m->type);
        }
        for (size_t i = 0; i < p.n_statuses; i++)
            (void)lucy_wa_status_rank(p.statuses[i].status);
    }
    lucy_wa_payload_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_signature(data, size);
    fuzz_payload(data, size);
    return 0;
}
