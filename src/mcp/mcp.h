/*
 * mcp.h - the Model Context Protocol endpoint (DESIGN §14): AI agents use
 * lucy's search, transcripts, people and calls over `/mcp` (revision
 * 2025-11-25, Streamable HTTP transport, the API's bearer token).
 *
 * src/mcp/ is a mapping layer only: JSON-RPC in, calls into the modules
 * that own the data (src/index/, src/people/, the call_recordings plugin's
 * recording.h), MCP results out. It stores nothing but its sessions (in the
 * kv, so every instance sharing a Redis knows them). docs/mcp.md tells how
 * to connect a client.
 */
#ifndef LUCY_MCP_H
#define LUCY_MCP_H

struct lucy_plugin;

/* The plugin (src/plugins/plugins.c): registers POST and DELETE /mcp.
 * Listed after index, people and call_recordings, whose data it reads. */
extern const struct lucy_plugin lucy_mcp_plugin;

#endif
