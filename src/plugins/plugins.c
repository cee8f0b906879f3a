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
    &lucy_kv_plugin,
    &lucy_index_plugin,
    &lucy_people_plugin,
    &lucy_call_recordings_plugin,
    &lucy_whatsapp_plugin,
    &lucy_web_plugin,
    &lucy_backups_plugin,
    &lucy_ask_plugin,
    &lucy_mcp_plugin,
    NULL,
};
