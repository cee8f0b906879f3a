// forget.test.js - export and forget in the web UI (issue 15), in Debian's
// Chromium driven by playwright-core, like ui.test.js:
//
//   node forget.test.js URL
//
// Started by tests/integration/test_ui_e2e.py::test_ui_export_and_forget
// against a real lucy that scanned and transcribed copies of samples/ and
// received signed WhatsApp webhooks. E2E_ARTEFACTS: folder for the
// screenshots. Every console error and page error fails the run.
"use strict";
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const h = require("./harness");
const { test, shot, artefacts } = h;

const base = h.baseUrl("node forget.test.js http://127.0.0.1:PORT");
const api = (p, opts) => h.api(base, p, opts);

// Clicks the button, answers the confirm dialog with its OK (after a
// screenshot when shotName is given).
async function confirmWith(page, button, shotName) {
  await button.click();
  await page.locator("#confirm-dialog[open]").waitFor();
  if (shotName) await shot(page, shotName);
  await page.click("#confirm-ok");
}

async function cases(page) {
  const recs = (await api("/recordings?limit=500")).body.recordings;
  const forward = recs.find((r) => path.basename(r.paths[0].path) === "goforward.m4a");
  assert.ok(forward, "goforward.m4a is scanned");
  const segments = (await api("/recordings/" + forward.id)).body.transcript.segments;

  await test("the transcript downloads as SRT, WebVTT, text and JSON", async () => {
    await page.goto(`${base}/#/recordings/${forward.id}`);
    await page.locator("#segments button").first().waitFor();
    for (const ext of ["srt", "vtt", "txt", "json"]) {
      const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#download-" + ext)]);
      assert.ok(dl.suggestedFilename().endsWith(forward.id.slice(0, 12) + "." + ext), dl.suggestedFilename());
      const file = path.join(artefacts, "transcript." + ext);
      await dl.saveAs(file);
      const text = fs.readFileSync(file, "utf8");
      if (ext === "srt") assert.equal((text.match(/ --> /g) || []).length, segments.length, text);
      if (ext === "vtt") assert.match(text, /^WEBVTT\n/);
      if (ext === "json") assert.deepEqual(JSON.parse(text).segments, segments);
    }
    await shot(page, "recording-downloads");
  });

  await test("Delete on a recording asks, then forgets it", async () => {
    await page.goto(`${base}/#/recordings/${forward.id}`);
    await page.locator("#segments button").first().waitFor();
    // Cancel keeps it
    await page.click("#rec-delete");
    await page.locator("#confirm-dialog[open]").waitFor();
    await page.click("#confirm-cancel");
    await page.locator("#confirm-dialog").waitFor({ state: "detached" });
    assert.equal((await api("/recordings/" + forward.id)).status, 200);
    await confirmWith(page, page.locator("#rec-delete"), "recording-delete-confirm");
    await page.waitForURL(/#\/recordings$/);
    await page.locator("#recordings li").first().waitFor();
    assert.equal(await page.locator(`#recordings li[data-id="${forward.id}"]`).count(), 0);
    assert.equal((await api("/recordings/" + forward.id)).status, 404);
    await shot(page, "recording-forgotten");
  });

  await test("Delete on a message asks, then forgets it", async () => {
    await page.goto(`${base}/#/messages/15550002222`);
    const item = page.locator('#messages li[data-wamid="wamid.TEXT0001"]');
    await item.waitFor();
    await confirmWith(page, item.locator('[data-role="delete"]'), "message-delete-confirm");
    await item.waitFor({ state: "detached" });
    const hits = (await api("/search?group=0&q=invoice")).body.hits.map((h) => h.id);
    assert.ok(!hits.includes("wamid.TEXT0001"), hits.join(","));
    assert.equal((await api("/messages/wamid.TEXT0001", { method: "DELETE" })).status, 204);
  });

  await test("Delete on a person asks, then forgets them with their messages", async () => {
    const people = (await api("/people?q=15550003333")).body.people;
    assert.equal(people.length, 1, JSON.stringify(people));
    const pid = people[0].id;
    await page.goto(`${base}/#/people/${pid}`);
    await page.locator("#person-delete").waitFor();
    await confirmWith(page, page.locator("#person-delete"), "person-delete-confirm");
    await page.waitForURL(/#\/people$/);
    assert.equal((await api("/people/" + pid)).status, 404);
    assert.equal((await api("/contacts/15550003333")).body.recent_messages.length, 0);
    await shot(page, "person-forgotten");
  });
}

h.run("forget", cases, { context: { acceptDownloads: true } });
