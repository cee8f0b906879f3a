/*
 * phone.cc - the C face of libphonenumber (see phone.h).
 *
 * The only C++ file in lucy. Each extern "C" function is one try block:
 * nothing may throw across the C boundary (std::bad_alloc from a string, or
 * anything from the library, becomes LUCY_PHONE_INTERNAL). The library's
 * logger is set to a NullLogger once, under std::call_once, before any use,
 * so it can never write to stdout: lucy's stdout is for commands' output
 * and its log is JSON lines.
 */
#include "phone.h"

#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumber.pb.h>
#include <phonenumbers/phonenumbermatch.h>
#include <phonenumbers/phonenumbermatcher.h>
#include <phonenumbers/phonenumberutil.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

using i18n::phonenumbers::NullLogger;
using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberMatch;
using i18n::phonenumbers::PhoneNumberMatcher;
using i18n::phonenumbers::PhoneNumberUtil;

namespace
{

/* How many candidate spans the matcher examines before giving up: a file
 * name holds few; this bounds the work on a pathological one. */
const int matcher_max_tries = 64;

std::once_flag util_once;

/* The shared PhoneNumberUtil, set up once. Its const methods (Parse,
 * Format, IsValidNumber, the matcher) keep no mutable state. */
const PhoneNumberUtil &util()
{
    std::call_once(util_once, [] {
        PhoneNumberUtil::GetInstance()->SetLogger(new NullLogger()); /* takes ownership */
    });
    return *PhoneNumberUtil::GetInstance();
}

/* The region to parse in: "" when none, or not one libphonenumber knows
 * (then a national number has no region to be read in). */
std::string region_of(const char *region)
{
    if (!region || std::strlen(region) != 2 ||
        !util().GetCountryCodeForRegion(std::string(region)) != 0)
        return std::string();
    return std::string(region);
}

void put_e164(const PhoneNumber &n, char e164[LUCY_PHONE_E164_SIZE])
{
    std::string s;
    util().Format(n, PhoneNumberUtil::E164, &s);
    std::snprintf(e164, LUCY_PHONE_E164_SIZE, "%s", s.c_str());
}

/* One parse of text in region: LUCY_PHONE_OK with *n filled, or why not. */
int parse_valid(const std::string &text, const std::string &region, PhoneNumber *n)
{
    const PhoneNumberUtil &u = util();
    switch (u.Parse(text, region.empty() ? "ZZ" : region, n)) {
    case PhoneNumberUtil::NO_PARSING_ERROR:
        return u.IsValidNumber(*n) ? LUCY_PHONE_OK : LUCY_PHONE_INVALID;
    case PhoneNumberUtil::NOT_A_NUMBER:
        return LUCY_PHONE_NOT_A_NUMBER;
    case PhoneNumberUtil::INVALID_COUNTRY_CODE_ERROR:
        /* "+999 …" names no country; a national number names none because
         * there was no region to read it in. */
        return text.find('+') != std::string::npos || !region.empty() ? LUCY_PHONE_INVALID
                                                                      : LUCY_PHONE_NO_REGION;
    default: /* too short after the IDD, too short or too long */
        return LUCY_PHONE_INVALID;
    }
}

/* "00…" after any leading blanks, i.e. the common international prefix. */
bool starts_with_00(const char *raw)
{
    while (*raw == ' ' || *raw == '\t')
        raw++;
    return raw[0] == '0' && raw[1] == '0';
}

} // namespace

extern "C" const char *lucy_phone_reason(int result)
{
    switch (result) {
    case LUCY_PHONE_OK:
        return "ok";
    case LUCY_PHONE_NOT_A_NUMBER:
        return "not a phone number";
    case LUCY_PHONE_NO_REGION:
        return "national number and no LUCY_DEFAULT_REGION to read it in";
    case LUCY_PHONE_INVALID:
        return "no such number in its country's numbering plan (libphonenumber)";
    case LUCY_PHONE_INTERNAL:
        return "internal error in libphonenumber";
    default:
        return "unknown phone number error";
    }
}

extern "C" int lucy_phone_region_known(const char *region)
{
    if (!region || std::strlen(region) != 2 || region[0] < 'A' || region[0] > 'Z' ||
        region[1] < 'A' || region[1] > 'Z')
        return 0;
    try {
        return util().GetCountryCodeForRegion(std::string(region)) != 0 ? 1 : 0;
    } catch (...) {
        return 0;
    }
}

extern "C" int lucy_phone_normalize(const char *raw, const char *region,
                                    char e164[LUCY_PHONE_E164_SIZE])
{
    e164[0] = '\0';
    if (!raw || !*raw || std::strlen(raw) > LUCY_PHONE_RAW_MAX)
        return LUCY_PHONE_NOT_A_NUMBER;
    try {
        std::string text(raw), reg = region_of(region);
        PhoneNumber n;
        int rc = parse_valid(text, reg, &n);
        if (rc != LUCY_PHONE_OK && rc != LUCY_PHONE_NOT_A_NUMBER && starts_with_00(raw)) {
            PhoneNumber n2;
            std::string intl = "+" + text.substr(text.find("00") + 2);
            if (parse_valid(intl, std::string(), &n2) == LUCY_PHONE_OK) {
                n = n2;
                rc = LUCY_PHONE_OK;
            }
        }
        if (rc == LUCY_PHONE_OK)
            put_e164(n, e164);
        return rc;
    } catch (...) {
        e164[0] = '\0';
        return LUCY_PHONE_INTERNAL;
    }
}

extern "C" int lucy_phone_from_wa_id(const char *wa_id, char e164[LUCY_PHONE_E164_SIZE])
{
    e164[0] = '\0';
    size_t len = wa_id ? std::strlen(wa_id) : 0;
    if (len < 7 || len > 15 || std::strspn(wa_id, "0123456789") != len || wa_id[0] == '0')
        return LUCY_PHONE_NOT_A_NUMBER;
    try {
        const PhoneNumberUtil &u = util();
        PhoneNumber n;
        if (u.Parse("+" + std::string(wa_id), "ZZ", &n) != PhoneNumberUtil::NO_PARSING_ERROR ||
            !u.IsPossibleNumber(n))
            return LUCY_PHONE_INVALID;
        put_e164(n, e164);
        return LUCY_PHONE_OK;
    } catch (...) {
        e164[0] = '\0';
        return LUCY_PHONE_INTERNAL;
    }
}

extern "C" int lucy_phone_find(const char *text, size_t len, size_t from, const char *region,
                               char e164[LUCY_PHONE_E164_SIZE], size_t *start, size_t *end)
{
    e164[0] = '\0';
    if (!text || from >= len)
        return LUCY_PHONE_NOT_A_NUMBER;
    try {
        std::string reg = region_of(region);
        PhoneNumberMatcher m(util(), std::string(text + from, len - from), reg.empty() ? "ZZ" : reg,
                             PhoneNumberMatcher::STRICT_GROUPING, matcher_max_tries);
        if (!m.HasNext())
            return LUCY_PHONE_NOT_A_NUMBER;
        PhoneNumberMatch match;
        if (!m.Next(&match))
            return LUCY_PHONE_NOT_A_NUMBER;
        put_e164(match.number(), e164);
        if (start)
            *start = from + (size_t)match.start();
        if (end)
            *end = from + (size_t)match.end();
        return LUCY_PHONE_OK;
    } catch (...) {
        e164[0] = '\0';
        return LUCY_PHONE_INTERNAL;
    }
}

extern "C" int lucy_phone_display(const char *e164, char *out, size_t outlen)
{
    if (!outlen)
        return LUCY_PHONE_INVALID;
    std::snprintf(out, outlen, "%s", e164 ? e164 : "");
    if (!e164 || e164[0] != '+')
        return LUCY_PHONE_INVALID;
    try {
        const PhoneNumberUtil &u = util();
        PhoneNumber n;
        if (u.Parse(std::string(e164), "ZZ", &n) != PhoneNumberUtil::NO_PARSING_ERROR)
            return LUCY_PHONE_INVALID;
        std::string s;
        u.Format(n, PhoneNumberUtil::INTERNATIONAL, &s);
        std::snprintf(out, outlen, "%s", s.c_str());
        return 0;
    } catch (...) {
        std::snprintf(out, outlen, "%s", e164);
        return LUCY_PHONE_INTERNAL;
    }
}
