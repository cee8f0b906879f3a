// ask.test.js - the Ask page (web/ask.js, DESIGN §14) in Debian's Chromium
// driven by playwright-core, like ui.test.js:
//
//   node ask.test.js URL QUESTION
//
// Started by tests/integration/test_ask.py::test_ask_page_in_chromium
// against a real lucy that scanned and transcribed a recording, one of
// whose passages (at t0_ms well after the start) answers QUESTION. Asks it
// on the page, checks the answer cites that passage, then presses the
// citation's Play button and checks the audio element plays from t0_ms
// (its currentTime), then opens the transcript at that moment.
// E2E_ARTEFACTS: folder for the screenshots. Every console error and
// page error fails the run.
"use strict";
const assert = require("node:assert/strict");
const h = require("./harness");
const { test, shot } = h;

const USAGE = "node ask.test.js http://127.0.0.1:PORT QUESTION";
const base = h.baseUrl(USAGE);
const question = process.argv[3] || "";
if (!question) {
  console.error("usage: " + USAGE);
  process.exit(2);
}

async function cases(page) {
  // What the page will show, from the API the page itself calls.
  const r = await fetch(base + "/ask?" + new URLSearchParams({ q: question }));
  const expected = (await r.json()).citations[0];
  assert.equal(expected.source, "call_recording");
  assert.ok(expected.t0_ms >= 1000, "the passage starts well after 0: " + expected.t0_ms);

  await test("a question asked on the page gets an answer citing the passage", async () => {
    await page.goto(base + "/#/ask");
    await page.fill("#ask-q", question);
    await page.click('#ask-form button[type="submit"]');
    await page.waitForURL(/#\/ask\?q=/);
    const first = page.locator("#ask-sources li").first();
    await first.waitFor();
    assert.equal(await first.getAttribute("data-id"), expected.id);
    assert.match(await page.locator("#ask-answer").textContent(), /\[1\]/);
    assert.ok(await page.locator("#ask-answer a.cite").count() >= 1, "[1] links to its source");
    assert.match(await first.locator("blockquote").textContent(), new RegExp(expected.quote.split(" ")[0]));
    await shot(page, "ask-answer");
  });

  await test("the citation's Play button plays from t0_ms", async () => {
    const first = page.locator("#ask-sources li").first();
    // Every position the audio reports while playing (media events do not
    // bubble, but a capturing listener on the document sees them): playing
    // from 0 would pass through t0 too, so the earliest one is the check.
    await page.evaluate(() => {
      window.playedAt = [];
      document.addEventListener("timeupdate", (ev) => {
        if (!ev.target.paused) window.playedAt.push(ev.target.currentTime);
      }, true);
    });
    await first.locator("button.play").click();
    const audio = first.locator("audio");
    await audio.waitFor({ state: "visible" });
    const from = expected.t0_ms / 1000, to = expected.t1_ms / 1000;
    await page.waitForFunction(() => window.playedAt.length >= 2, null, { timeout: 20000 });
    const played = await page.evaluate(() => window.playedAt);
    console.log(`     t0 ${from} s; played at ${played.map((t) => t.toFixed(2)).join(", ")} s`);
    assert.ok(played[0] >= from - 0.05 && played[0] < to,
      `it started playing at ${played[0]} s, not in the passage ${from}..${to} s: ${played}`);
    assert.ok(await audio.evaluate((a) => a.src.includes("/audio")), "the recording's audio");
    await shot(page, "ask-playing");
  });

  await test("the source's link opens the transcript at the moment", async () => {
    const first = page.locator("#ask-sources li").first();
    await first.locator("a.title").click();
    await page.waitForURL(new RegExp(`#/recordings/${expected.id}\\?t=${expected.t0_ms}`));
    await page.locator("#segments button").first().waitFor();
  });
}

// The Play button must start the audio without a user gesture of its own.
h.run("ask", cases, { args: ["--autoplay-policy=no-user-gesture-required"] });
