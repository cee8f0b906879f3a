// harness.js - what every browser test of lucy's web UI shares (ui.test.js,
// ask.test.js, forget.test.js): Debian's Chromium launched headless
// through playwright-core (no browser download) in a throw-away profile,
// the base URL from argv, the screenshot folder, the named test cases with
// their "ok"/"FAIL" lines, and the rule that every console error and page
// error fails the case it happens in.
//
//   const h = require("./harness");
//   const base = h.baseUrl("node x.test.js http://127.0.0.1:PORT");
//   h.run("x", async (page) => {
//     await h.test("something works", async () => { ... await h.shot(page, "x"); });
//   });
//
// run() prints "N passed, M failed" last and exits 1 when any case (or
// the setup) failed; the pytest side (tests/integration/test_ui_e2e.py,
// test_ask.py) starts lucy, runs the script and checks that line.
// Environment: CHROMIUM (default /usr/bin/chromium), E2E_ARTEFACTS (the
// screenshots' folder, default artefacts/e2e at the repository's root).
"use strict";
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
// Quiet and reproducible: no network of its own, no GPU, no sound.
const ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
  "--disable-sync", "--no-first-run", "--disable-gpu", "--disable-quic",
  "--disable-default-apps", "--disable-extensions", "--mute-audio"];

const artefacts = process.env.E2E_ARTEFACTS || path.join(__dirname, "..", "..", "artefacts", "e2e");
fs.mkdirSync(artefacts, { recursive: true });

const problems = []; // console and page errors, in order
const results = []; // [name, error or null]
// Console errors the running case provokes on purpose ([{status, path:
// RegExp}]: "Failed to load resource: ... status of 401" for that path);
// cleared after each case.
let expectedErrors = [];

// The lucy URL given as argv[2] (no trailing slash); prints usage and
// exits 2 when it is not an http:// URL.
function baseUrl(usage) {
  const base = (process.argv[2] || "").replace(/\/$/, "");
  if (!/^http:\/\//.test(base)) {
    console.error("usage: " + usage);
    process.exit(2);
  }
  return base;
}

// Lets the running case provoke these console errors (see expectedErrors).
function expectConsoleErrors(list) {
  expectedErrors = list;
}

function watch(page) {
  page.on("pageerror", (err) => problems.push("page error: " + (err.stack || err.message)));
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    const m = /status of (\d{3})/.exec(text);
    const url = (msg.location() && msg.location().url) || "";
    let p = "";
    try { p = new URL(url).pathname; } catch (e) { /* not a URL */ }
    if (m && expectedErrors.some((e) => e.status === Number(m[1]) && e.path.test(p))) return;
    problems.push(`console error: ${text}${url ? ` (${url})` : ""}`);
  });
}

// Runs one named case: fails on an exception or on a console/page error
// that happened meanwhile.
async function test(name, fn) {
  const before = problems.length;
  const t0 = Date.now();
  try {
    await fn();
    if (problems.length > before) throw new Error(problems.slice(before).join("\n"));
    results.push([name, null]);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push([name, e]);
    console.log(`FAIL ${name}\n     ${String(e.stack || e).split("\n").join("\n     ")}`);
  } finally {
    expectedErrors = [];
  }
}

// A full-page screenshot artefacts/<name>.png, from the top (else the
// sticky header lands mid-picture).
async function shot(page, name) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: path.join(artefacts, name + ".png"), fullPage: true });
}

// fetch() of base + p: {status, body} (JSON parsed when it is JSON), with
// the bearer token when one is given.
async function api(base, p, opts = {}, token = null) {
  const headers = { ...(opts.headers || {}) };
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(base + p, { ...opts, headers });
  const type = r.headers.get("content-type") || "";
  return { status: r.status, body: type.includes("json") ? await r.json() : await r.text() };
}

// Launches Chromium in a fresh profile (lucy-e2e-<name>-*, removed after),
// runs cases(page) on its first page (15 s default timeout, errors
// watched), then prints the summary and exits. options: extra `args` for
// Chromium, and `context`: more launchPersistentContext options
// (acceptDownloads, ...).
async function run(name, cases, options = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `lucy-e2e-${name}-`));
  let context = null;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: ARGS.concat(options.args || []),
      viewport: { width: 1280, height: 900 }, ...(options.context || {}),
    });
    const page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(15000);
    watch(page);
    await cases(page);
  } catch (e) {
    results.push(["setup", e]);
    console.log("FAIL setup: " + (e.stack || e));
  } finally {
    if (context) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  if (problems.length) console.log("console problems:\n  " + problems.join("\n  "));
  const failed = results.filter((r) => r[1]).length;
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

module.exports = { CHROMIUM, artefacts, baseUrl, expectConsoleErrors, test, shot, api, run };
