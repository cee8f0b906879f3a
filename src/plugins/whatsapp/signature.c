/*
 * signature.c - Meta's X-Hub-Signature-256 check (DESIGN §5, FACTS.md).
 *
 * Meta signs every webhook POST with HMAC-SHA256 keyed by the app secret
 * over the exact body bytes and sends `X-Hub-Signature-256: sha256=<hex>`
 * (Meta for Developers, "Webhooks: Validate payloads"). The body is never
 * parsed or re-serialised before the check: Meta sends non-ASCII text as
 * \uXXXX escapes and `/` as `\/`, and a re-encoded body hashes differently.
 *
 * The HMAC comes from OpenSSL's EVP_Q_mac(); the expected and the received
 * 32 bytes are compared with CRYPTO_memcmp() so the time taken does not
 * depend on how many leading bytes match.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "../../error.h"
#include "whatsapp.h"

#define SHA256_BYTES 32
#define PREFIX       "sha256="

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hmac_sha256(const char *secret, const void *body, size_t len,
                       unsigned char out[SHA256_BYTES])
{
    size_t out_len = 0;
    static const unsigned char empty;
    if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret), len ? body : &empty,
                   len, out, SHA256_BYTES, &out_len) ||
        out_len != SHA256_BYTES)
        return LUCY_EINVAL;
    return 0;
}

int lucy_wa_signature_check(const char *secret, const char *header, const void *body, size_t len)
{
    if (!header || strncmp(header, PREFIX, sizeof PREFIX - 1) != 0)
        return LUCY_EINVAL;
    const char *hex = header + sizeof PREFIX - 1;
    if (strlen(hex) != 2 * SHA256_BYTES)
        return LUCY_EINVAL;
    unsigned char given[SHA256_BYTES], expected[SHA256_BYTES];
    for (int i = 0; i < SHA256_BYTES; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return LUCY_EINVAL;
        given[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!secret || hmac_sha256(secret, body, len, expected) != 0)
        return LUCY_EPERM;
    return CRYPTO_memcmp(given, expected, SHA256_BYTES) == 0 ? 0 : LUCY_EPERM;
}

int lucy_wa_signature_make(const char *secret, const void *body, size_t len, char *out,
                           size_t outlen)
{
    unsigned char mac[SHA256_BYTES];
    if (outlen < sizeof PREFIX + 2 * SHA256_BYTES || hmac_sha256(secret, body, len, mac) != 0)
        return LUCY_EINVAL;
    memcpy(out, PREFIX, sizeof PREFIX - 1);
    for (int i = 0; i < SHA256_BYTES; i++)
        snprintf(out + sizeof PREFIX - 1 + 2 * i, 3, "%02x", mac[i]);
    return 0;
}
