// lucy's /mcp through the official MCP TypeScript SDK: connect over
// Streamable HTTP with the bearer token, list the tools, call each one, read
// a resource. Started by tests/integration/test_mcp.py, which checks the
// summary printed on the last line (JSON).
//
//   node client.mjs URL TOKEN WORD RECORDING_ID
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, word, recordingId] = process.argv.slice(2);

function structured(result, name) {
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  return result.structuredContent;
}

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "lucy-test", version: "1.0.0" });
await client.connect(transport);

// The SDK validates structuredContent against each tool's outputSchema
// (listed first) and throws when they disagree.
const { tools } = await client.listTools();
const search = structured(await client.callTool({ name: "search", arguments: { query: word } }), "search");
const transcript = structured(
  await client.callTool({ name: "get_transcript", arguments: { recording_id: recordingId } }),
  "get_transcript",
);
const calls = structured(await client.callTool({ name: "list_calls", arguments: {} }), "list_calls");
const personId = calls.calls.find((c) => c.recording_id === recordingId).person.id;
const person = structured(
  await client.callTool({ name: "get_person", arguments: { person_id: personId } }),
  "get_person",
);
const ask = structured(
  await client.callTool({ name: "ask", arguments: { question: `what was said about ${word}?` } }),
  "ask",
);
const bad = await client.callTool({ name: "get_person", arguments: { person_id: "x" } });
if (!bad.isError) throw new Error("a bad argument was not an isError result");
const resource = await client.readResource({ uri: `lucy://recordings/${recordingId}` });
const templates = await client.listResourceTemplates();
await transport.terminateSession();
await client.close();

console.log(
  JSON.stringify({
    tools: tools.map((t) => t.name),
    search_ids: search.hits.map((h) => h.id),
    transcript_segments: transcript.segments.length,
    person_name: person.name,
    calls: calls.calls.length,
    templates: templates.resourceTemplates.length,
    resource_id: JSON.parse(resource.contents[0].text).id,
    ask_cited_ids: ask.lucy.citations.map((c) => c.id),
    ask_verified: ask.lucy.verified,
  }),
);
