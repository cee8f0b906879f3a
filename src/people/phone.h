/*
 * phone.h - phone numbers to E.164, with libphonenumber (DESIGN §12).
 *
 * A person's phone identifier is its E.164 form ("+14155550123"): the one
 * spelling a recorder's file name, a BCR sidecar, a WhatsApp wa_id and a
 * number the user typed all reduce to, so they link. The parsing rules are
 * Google's libphonenumber (Debian libphonenumber-dev, the library Android
 * itself uses), called from phone.cc behind this C face.
 *
 * National numbers ("020 7946 0018") need a region (ISO 3166 alpha-2, e.g.
 * LUCY_DEFAULT_REGION); without one they cannot be normalised and the
 * caller keeps them raw and unlinked, saying why (lucy_phone_reason()).
 *
 * Threads: every function may be called from any thread at once. They only
 * read libphonenumber's PhoneNumberUtil, a singleton whose const methods are
 * safe to share; its one-time set-up (metadata, logger) runs under a
 * std::call_once. No function throws: every C++ exception is caught inside
 * phone.cc and reported as LUCY_PHONE_INTERNAL.
 */
#ifndef LUCY_PEOPLE_PHONE_H
#define LUCY_PEOPLE_PHONE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes for an E.164 string: '+', at most 15 digits (ITU-T E.164 §6), NUL. */
#define LUCY_PHONE_E164_SIZE 17

/* Inputs longer than this are not phone numbers (libphonenumber's own
 * limit is 250 characters). */
#define LUCY_PHONE_RAW_MAX 250

/* Why a number could not be normalised. 0 = success; the others are
 * negative so that "rc < 0" means failure, as with LUCY_E* codes. */
enum lucy_phone_result {
    LUCY_PHONE_OK = 0,
    LUCY_PHONE_NOT_A_NUMBER = -1, /* no phone number in the text at all */
    LUCY_PHONE_NO_REGION = -2,    /* a national number and no default region */
    LUCY_PHONE_INVALID = -3,      /* reads as a number, but none such exists in its country */
    LUCY_PHONE_INTERNAL = -4      /* out of memory or an exception inside libphonenumber */
};

/* A short constant English reason for a lucy_phone_result ("national number
 * and no LUCY_DEFAULT_REGION to read it in"), for warnings and the ledger.
 * Never NULL. */
const char *lucy_phone_reason(int result);

/* 1 when region is a two-letter upper-case ISO 3166 code libphonenumber has
 * metadata for ("GB", "DE", "US"; not "UK", "ZZ" or "gb"), else 0. */
int lucy_phone_region_known(const char *region);

/* Normalises raw, a number as typed: international ("+44 20 7946 0018",
 * "0044 20 7946 0018"), national ("020 7946 0018", "(415) 555-0123"), with
 * any spaces, dashes, dots or parentheses. region (NULL or "" = none) reads
 * national numbers. A leading "00" is the international prefix of most of
 * the world: when the number does not read as valid in region (or there is
 * no region), it is tried once more as "+" and the rest.
 * On LUCY_PHONE_OK writes the E.164 form into e164 (LUCY_PHONE_E164_SIZE
 * bytes); on failure e164 is "" and the result says why. Only numbers
 * libphonenumber holds valid (IsValidNumber) are accepted. */
int lucy_phone_normalize(const char *raw, const char *region, char e164[LUCY_PHONE_E164_SIZE]);

/* The E.164 form of a WhatsApp wa_id: the sender's number in international
 * form without '+' ("447700900123"). It must be 7 to 15 ASCII digits with a
 * country code libphonenumber knows and a possible length for it
 * (IsPossibleNumber). Possible, not valid: Meta has already proved that the
 * number exists, and this Debian metadata (8.12.57) may predate newer
 * number ranges. Result and e164 as lucy_phone_normalize(). */
int lucy_phone_from_wa_id(const char *wa_id, char e164[LUCY_PHONE_E164_SIZE]);

/* Finds the first phone number in text[from..len) (free text such as a file
 * name, UTF-8), with libphonenumber's PhoneNumberMatcher at leniency
 * STRICT_GROUPING: a valid number whose digits are grouped as the country
 * writes them, so "+1 415-555-0123", "+14155550123_20240301-101500" and,
 * with region US, "(415) 555-0123" are found, while dates and times such
 * as "20230414_215701.088-0400" are not. region as lucy_phone_normalize().
 * On LUCY_PHONE_OK fills e164 and the match's byte span [*start, *end) in
 * text (either pointer may be NULL); else LUCY_PHONE_NOT_A_NUMBER. */
int lucy_phone_find(const char *text, size_t len, size_t from, const char *region,
                    char e164[LUCY_PHONE_E164_SIZE], size_t *start, size_t *end);

/* Writes e164 in international display form ("+1 415-555-0123") into out
 * (outlen bytes, truncated safely). Returns 0, or LUCY_PHONE_INVALID when
 * e164 is not an E.164 number (then out holds e164 unchanged). */
int lucy_phone_display(const char *e164, char *out, size_t outlen);

#ifdef __cplusplus
}
#endif

#endif
