/*
 * session.c - MCP sessions (Streamable HTTP's MCP-Session-Id): created by
 * initialize, required on every later message, ended by DELETE /mcp.
 *
 * A session holds nothing lucy needs between requests (every tool is
 * stateless), so it is only a key in the kv: mcp:session:<id> = the
 * negotiated protocol version, for SESSION_TTL_MS. With Redis every
 * instance behind one balancer knows every session. While the kv is down
 * a session cannot be checked and is accepted (UNCHECKED): a down Redis
 * degrades the check, it does not lock agents out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "../error.h"
#include "../kv/kv.h"
#include "../log.h"
#include "../lucy.h"
#include "mcp_int.h"

#define SESSION_TTL_MS (24LL * 3600 * 1000) /* an idle day: then the client initializes again */

static void session_key(char *key, size_t len, const char *id)
{
    snprintf(key, len, "mcp:session:%s", id);
}

int mcp_session_new(struct lucy_mcp *m, const char *version, char id[33])
{
    unsigned char b[16];
    if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b)
        return LUCY_EIO;
    for (size_t i = 0; i < sizeof b; i++)
        snprintf(id + 2 * i, 3, "%02x", b[i]);
    if (!m->ctx->kv)
        return 0;
    char key[64];
    session_key(key, sizeof key, id);
    struct lucy_kv_error err = {0};
    int rc = lucy_kv_set(m->ctx->kv, key, version, strlen(version), SESSION_TTL_MS, 0, &err);
    if (rc)
        lucy_log(LUCY_LOG_WARNING, "mcp: session not stored; it is accepted unchecked", "{s:s}",
                 "error", err.message);
    return rc;
}

enum mcp_session_state mcp_session_check(struct lucy_mcp *m, const char *id)
{
    if (!m->ctx->kv)
        return MCP_SESSION_UNCHECKED;
    if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32)
        return MCP_SESSION_UNKNOWN;
    char key[64];
    session_key(key, sizeof key, id);
    char *value = NULL;
    size_t len = 0;
    struct lucy_kv_error err = {0};
    int rc = lucy_kv_get(m->ctx->kv, key, &value, &len, 0, &err);
    free(value);
    return rc == 0                ? MCP_SESSION_LIVE
           : rc == LUCY_ENOTFOUND ? MCP_SESSION_UNKNOWN
                                  : MCP_SESSION_UNCHECKED;
}

int mcp_session_delete(struct lucy_mcp *m, const char *id)
{
    if (!m->ctx->kv)
        return 0;
    char key[64];
    session_key(key, sizeof key, id);
    struct lucy_kv_error err = {0};
    return lucy_kv_del(m->ctx->kv, key, 0, &err);
}
