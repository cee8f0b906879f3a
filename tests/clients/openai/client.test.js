// client.test.js - the official `openai` npm package (pinned in
// package-lock.json) talks to lucy as to any OpenAI-compatible server:
// a plain and a streamed chat completion with model "lucy", reading the
// answer, the url_citation annotations and lucy's citations, and a refused
// request read as the client reads OpenAI's errors. Run by
// tests/integration/test_ask.py:
//
//   node client.test.js BASE_URL QUESTION EXPECTED_ID [TOKEN]
//
// Prints one JSON line {"plain": {...}, "streamed": {...}} on success;
// exits 1 with the reason otherwise.
"use strict";
const assert = require("node:assert/strict");
const { OpenAI } = require("openai");

async function main() {
  const [base, question, expectedId, token] = process.argv.slice(2);
  const client = new OpenAI({ baseURL: base + "/v1", apiKey: token || "none", maxRetries: 0, timeout: 60000 });

  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), ["lucy"]);

  const plain = await client.chat.completions.create({
    model: "lucy",
    messages: [{ role: "user", content: question }],
  });
  const msg = plain.choices[0].message;
  assert.equal(msg.role, "assistant");
  assert.match(msg.content, /\[1\]/);
  const ann = msg.annotations[0];
  assert.equal(ann.type, "url_citation");
  assert.equal(msg.content.slice(ann.url_citation.start_index, ann.url_citation.end_index), "[1]");
  const cites = plain.lucy.citations; // the extension object passes through the client
  assert.equal(cites[0].id, expectedId);
  assert.equal(ann.url_citation.url, cites[0].url);

  const stream = await client.chat.completions.create({
    model: "lucy",
    stream: true,
    messages: [{ role: "user", content: question }],
  });
  let text = "";
  let last = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content || "";
    last = chunk;
  }
  assert.equal(last.choices[0].finish_reason, "stop");
  assert.equal(last.lucy.citations[0].id, expectedId);
  assert.equal(text, msg.content);

  // An error reaches the client with lucy's message, as OpenAI's would.
  let refused = null;
  try {
    await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: question }] });
  } catch (e) {
    refused = e;
  }
  assert.ok(refused instanceof OpenAI.BadRequestError, String(refused));
  assert.equal(refused.status, 400);
  assert.match(refused.message, /model must be "lucy"/);
  assert.equal(refused.type, "bad_request");

  console.log(JSON.stringify({
    plain: { content: msg.content, url: ann.url_citation.url, verified: plain.lucy.verified },
    streamed: { content: text, verified: last.lucy.verified, llm: last.lucy.retrieval.llm },
  }));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
