/*
 * plugins.c - the plugins built into lucy, in start-up order.
 */
#include <stddef.h>

#include "../ask/ask_int.h"
#include "../index/index.h"
#include "../kv/kv.h"
#include "../mcp/mcp.h"
#include "../people/people.h"
#include "../store/backups.h"
#include "../web/web.h"
#include "call_recordings/plugin.h"
#include "plugin.h"
#include "whatsapp/whatsapp.h"

const struct lucy_plugin *const lucy_plugins[] = {
    &lucy_kv_plugin,              /* shared state: the others' kv (ctx->kv) */
    &lucy_index_plugin,           /* the search index (ctx->index) and its indexer */
    &lucy_people_plugin,          /* persons, the forget registry (ctx->forget) */
    &lucy_call_recordings_plugin, /* scanner, jobs, transcription workers */
    &lucy_whatsapp_plugin,        /* the webhook inbox and its workers */
    &lucy_web_plugin,             /* the UI */
    &lucy_backups_plugin,         /* scheduled backups */
    &lucy_ask_plugin,             /* the ask engine (ctx->ask), /v1, /ask */
    &lucy_mcp_plugin,             /* /mcp, over the modules above */
    NULL,
};
