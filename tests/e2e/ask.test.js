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
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-gpu", "--disable-quic",
  "--disable-default-apps", "--disable-extensions", "--mute-audio",
  "--autoplay-policy=no-user-gesture-required"];

const base = (process.argv[2] || "").replace(/\/$/, "");
const question = process.argv[3] || "";
if (!/^http:\/\//.test(base) || !question) {
  console.error("usage: node ask.test.js http://127.0.0.1:PORT QUESTION");
  process.exit(2);
}
const artefacts = process.env.E2E_ARTEFACTS || path.join(__dirname, "..", "..", "artefacts", "e2e");
fs.mkdirSync(artefacts, { recursive: true });

const problems = [];
function watch(page) {
  page.on("pageerror", (err) => problems.push("page error: " + (err.stack || err.message)));
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`console error: ${msg.text()}`);
  });
}

const results = [];
async function test(name, fn) {
  const before = problems.length;
  try {
    await fn();
    if (problems.length > before) throw new Error(problems.slice(before).join("\n"));
    results.push([name, null]);
    console.log(`ok   ${name}`);
  } catch (e) {
    results.push([name, e]);
    console.log(`FAIL ${name}\n     ${String(e.stack || e).split("\n").join("\n     ")}`);
  }
}

async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(artefacts, name + ".png"), fullPage: true });
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

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "lucy-e2e-ask-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1280, height: 900 },
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15000);
    watch(page);
    await cases(page);
  } catch (e) {
    results.push(["setup", e]);
    console.log("FAIL setup: " + (e.stack || e));
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (problems.length) console.log("console problems:\n  " + problems.join("\n  "));
  const failed = results.filter((r) => r[1]).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
