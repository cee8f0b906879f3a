"""The web UI end to end (issue 8, docs/ui.md): a real lucy with copies of
samples/, signed WhatsApp webhooks posted first, then tests/e2e/ui.test.js
drives Debian's Chromium (headless, through playwright-core) against it.

Faults are real: the LD_PRELOAD lock shim (tests/faults/lockshim.c) makes
cards-003-stereo.m4a look held by a sync client, and when root the data dir is a
small tmpfs the browser test fills to between the warn and the critical
threshold (else lucy runs with LUCY_DISK_WARN_PCT=99 so a normal disk is
"warn"). Screenshots go to artefacts/e2e/<build>/.

Skipped, with the reason, only when node or /usr/bin/chromium is missing.
`npm ci` (from tests/e2e/package-lock.json, offline first) runs when
tests/e2e/node_modules lacks playwright-core.
"""
import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD_DIR, IS_ROOT, ROOT
from test_webhook import SECRET, fixture_bytes, message_body, post

E2E = os.path.join(ROOT, "tests", "e2e")
CHROMIUM = "/usr/bin/chromium"
NODE = shutil.which("node")
LOCKSHIM = os.environ.get("LOCKSHIM_SO", os.path.join(BUILD_DIR, "tests", "faults", "liblockshim.so"))
SAMPLES = os.path.join(ROOT, "samples")
TOKEN = "e2e-token-0123456789"

pytestmark = [
    pytest.mark.skipif(not NODE, reason="node is not installed (it comes with the machine image)"),
    pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                       reason="chromium is not installed: run scripts/install-deps"),
]


def ensure_playwright():
    """Skips the test when node or Chromium is missing; else installs
    tests/e2e/node_modules from the lock file when it lacks playwright-core
    (for the scripts there, which all run through tests/e2e/harness.js).
    Returns tests/e2e."""
    if not NODE or not os.access(CHROMIUM, os.X_OK):
        pytest.skip("node or chromium is not installed (scripts/install-deps)")
    if not os.path.exists(os.path.join(E2E, "node_modules", "playwright-core", "package.json")):
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        r = subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"], cwd=E2E,
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, "npm ci failed in tests/e2e:\n" + r.stdout + r.stderr
    return E2E


@pytest.fixture(scope="module")
def playwright():
    """tests/e2e/node_modules from the lock file, installed once."""
    return ensure_playwright()


def samples_dir(tmp_path):
    d = tmp_path / "recordings"
    d.mkdir()
    for name in os.listdir(SAMPLES):
        if not name.endswith(".md"):
            shutil.copy(os.path.join(SAMPLES, name), str(d / name))
    return str(d)


# The Part II story (docs/calls.md, DESIGN §12, §16), added to the samples'
# BCR-named call with its sidecar (John Doe, +14155550123, 14 Apr 2023):
# each fixture's date is explicit, never the copy's mtime.
CALL_SAMSUNG = "Call recording Sarah Lee_240115_093012.m4a"  # Samsung: name, 15 Jan 2024 09:30:12
CALL_STEREO = "+14155550123_20240301-101500_incoming.m4a"    # number first, stereo, John Doe again
SYNC_DIR = ".dropbox.cache"  # never walked: one ledger row for the folder
SYNC_COPY = os.path.join(SYNC_DIR, "old", "tmp_8f3a2.m4a")  # a stale copy of a call inside it
CORRUPT = "cut-short.m4a"  # an MP4 cut before its index: corrupt, a ledger row with the decoder's reason
PLAIN_MTIME_S = 1654041600  # 2022-06-01 00:00 UTC (+ a day each): the plain samples are older than every call
WA_JOHN_TS = 1709380800     # 2024-03-02 12:00 UTC: John Doe's WhatsApp message, after his calls
WA_MARKUP_TS = 1764244800   # 2025-11-27 12:00 UTC: another UTC day than text.json's (2025-11-30)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y"] + list(args), check=True, timeout=60)


def story_fixtures(rec_dir):
    """Adds the call fixtures to a samples_dir() copy; returns how many
    recordings the folder then holds (the corrupt file and the sync-cache
    copy are none)."""
    plain = sorted(n for n in os.listdir(rec_dir) if not n.endswith(".json") and not n.startswith("20230414_"))
    for i, name in enumerate(plain):  # a day apart: "newest first" has one order
        os.utime(os.path.join(rec_dir, name), (PLAIN_MTIME_S + i * 86400, PLAIN_MTIME_S + i * 86400))
    fwd = os.path.join(SAMPLES, "goforward.m4a")
    # "go forward ten meters" three times with 2 s pauses: three segments,
    # so q=forward hits this one conversation three times.
    ffmpeg("-i", fwd, "-f", "lavfi", "-t", "2", "-i", "anullsrc=r=16000:cl=mono",
           "-filter_complex", "[0:a][1:a][0:a][1:a][0:a]concat=n=5:v=0:a=1[a]", "-map", "[a]",
           "-c:a", "aac", "-b:a", "32k", "-ar", "16000", "-ac", "1", os.path.join(rec_dir, CALL_SAMSUNG))
    # A stereo call: the stereo sample remuxed with a tag of its own (a new
    # content, so a recording of its own) under a number-first name.
    ffmpeg("-i", os.path.join(SAMPLES, "cards-003-stereo.m4a"), "-c", "copy", "-metadata",
           "comment=lucy e2e stereo call", os.path.join(rec_dir, CALL_STEREO))
    sync = os.path.join(rec_dir, SYNC_COPY)
    os.makedirs(os.path.dirname(sync))
    shutil.copy(fwd, sync)
    with open(os.path.join(SAMPLES, "librivox-0880.m4a"), "rb") as f:  # moov at the end
        head = f.read(4096)
    with open(os.path.join(rec_dir, CORRUPT), "wb") as f:
        f.write(head)
    os.utime(os.path.join(rec_dir, CORRUPT), (PLAIN_MTIME_S, PLAIN_MTIME_S))
    return len([n for n in os.listdir(rec_dir) if not n.endswith(".json") and n != CORRUPT
                and os.path.isfile(os.path.join(rec_dir, n))])


def artefacts_dir():
    d = os.path.join(ROOT, "artefacts", "e2e", os.path.basename(os.path.normpath(BUILD_DIR)))
    os.makedirs(d, exist_ok=True)
    return d


def run_node(url, env, *args, script="ui.test.js"):
    r = subprocess.run([NODE, os.path.join(E2E, script), url] + list(args), cwd=E2E,
                       env=dict(os.environ, **env), capture_output=True, text=True, timeout=300)
    print(r.stdout, r.stderr)
    return r


def wait_transcribed(lucy, n):
    def ready():
        recs = lucy.get("/recordings", params={"limit": 500}).json()["recordings"]
        return len(recs) >= n and all(r["transcript_status"] in ("done", "no_speech") for r in recs) and recs
    return lucy.wait_for(ready, timeout=120, interval=0.3, what="%d recordings transcribed" % n)


def test_ui_in_chromium(start_lucy, tmp_path, tmpfs, playwright):
    if not os.path.exists(LOCKSHIM):
        pytest.fail("lock shim not built: " + LOCKSHIM)
    rec_dir = samples_dir(tmp_path)
    n_audio = story_fixtures(rec_dir)
    control = str(tmp_path / "locks")
    open(control, "w").close()
    env = {
        "LUCY_RECORDINGS_DIRS": rec_dir, "LUCY_SCAN_SETTLE_S": "0",
        "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1",
        "WHATSAPP_APP_SECRET": SECRET, "LUCY_RATE_LIMIT": "1000/min",
        "LD_PRELOAD": LOCKSHIM, "LOCKSHIM_FILE": control,
        "LUCY_DISK_RESERVE_MB": "1",
    }
    if IS_ROOT:
        # A 64 MiB tmpfs: warn below 20 % free, critical below 5 %; the
        # browser test fills it to leave 12 % (about 7.7 MiB) free.
        data = os.path.join(tmpfs("64m"), "data")
        env.update({"LUCY_DISK_WARN_PCT": "20", "LUCY_DISK_CRITICAL_PCT": "5"})
        disk = {"E2E_DISK_MODE": "tmpfs", "E2E_DISK_LEAVE_BYTES": str(int(64 * 1048576 * 0.12))}
    else:
        data = str(tmp_path / "data")
        env.update({"LUCY_DISK_WARN_PCT": "99", "LUCY_DISK_CRITICAL_PCT": "1"})
        disk = {"E2E_DISK_MODE": "thresholds"}
    lucy = start_lucy(env=env, data_dir=data)

    for name in ("text.json", "batch_two_entries.json", "image_caption.json", "unicode_escaped.json"):
        r = post(lucy, fixture_bytes(name))
        assert r.status_code == 200, r.text
    # Text that looks like markup: the UI must show it as text.
    r = post(lucy, message_body("wamid.E2EMARKUP01", sender="15550002222", name="Alex Example",
                                text="invoice <img src=x onerror=alert(1)> <b>bold</b> & more",
                                ts=WA_MARKUP_TS))
    assert r.status_code == 200, r.text
    # The calls' number on WhatsApp: one person with both calls (docs/people.md).
    r = post(lucy, message_body("wamid.E2EJOHN01", sender="14155550123", name="John Doe",
                                text="Thanks for the call yesterday", ts=WA_JOHN_TS))
    assert r.status_code == 200, r.text
    wait_transcribed(lucy, n_audio)
    lucy.wait_for(lambda: lucy.get("/search", params={"q": "invoice"}).json()["count"] >= 2
                  and lucy.get("/search", params={"q": "yesterday"}).json()["count"] >= 1,
                  timeout=30, what="messages indexed")
    lucy.wait_for(lambda: {CORRUPT, SYNC_DIR} <= {
        os.path.relpath(i["path"], rec_dir) for i in lucy.get("/ledger").json()["items"]},
                  timeout=30, what="the corrupt file and the sync folder in the ledger")

    r = run_node(lucy.url, dict(disk, E2E_ARTEFACTS=artefacts_dir(), E2E_LOCK_CONTROL=control,
                                E2E_LOCK_TARGET=os.path.join(rec_dir, "cards-003-stereo.m4a"),
                                E2E_DATA_DIR=data, E2E_CALL_SAMSUNG=CALL_SAMSUNG,
                                E2E_CALL_STEREO=CALL_STEREO, E2E_CORRUPT=CORRUPT))
    assert r.returncode == 0, "browser test failed:\n" + r.stdout[-8000:] + r.stderr[-4000:]
    assert re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout

    # Chromium's player asked for ranges, and lucy answered 206.
    metrics = lucy.get("/metrics").text
    m = re.search(r'lucy_http_requests_total\{method="GET",route="/recordings/\{id\}/audio",status="206"\} (\d+)',
                  metrics)
    assert m and int(m.group(1)) > 0, [l for l in metrics.splitlines() if "audio" in l]
    for name in ("recordings", "transcript", "search-recording", "search-message", "messages",
                 "locked", "status", "recordings-phone", "people", "person", "merge-confirm",
                 "person-merged", "history-refused", "person-phone", "recordings-dates",
                 "recordings-person", "search-grouped", "status-ledger"):
        assert os.path.getsize(os.path.join(artefacts_dir(), name + ".png")) > 1000, name


def test_ui_with_api_token(start_lucy, tmp_path, playwright):
    rec_dir = samples_dir(tmp_path)
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": rec_dir, "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1",
                           "LUCY_API_TOKEN": TOKEN})
    auth = {"Authorization": "Bearer " + TOKEN}
    lucy.wait_for(lambda: lucy.get("/recordings", headers=auth).json()["recordings"], timeout=30,
                  what="recordings scanned")
    # The static files need no token; the API does.
    assert lucy.get("/").status_code == 200
    assert lucy.get("/recordings").status_code == 401
    r = run_node(lucy.url, {"E2E_ARTEFACTS": artefacts_dir()}, "--token", TOKEN)
    assert r.returncode == 0, "browser test failed:\n" + r.stdout[-8000:] + r.stderr[-4000:]
    assert re.search(r"^\d+ passed, 0 failed$", r.stdout, re.M), r.stdout
    assert TOKEN not in lucy.log_text()


def test_ui_export_and_forget(start_lucy, tmp_path, playwright):
    """tests/e2e/forget.test.js: download buttons, and Delete with a confirm
    on a recording, a message and a person (issue 15)."""
    rec_dir = samples_dir(tmp_path)
    n_audio = len([n for n in os.listdir(rec_dir) if not n.endswith(".json")])
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": rec_dir, "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_ASR_ENGINE": "pocketsphinx", "LUCY_ASR_THREADS": "1",
                           "WHATSAPP_APP_SECRET": SECRET, "LUCY_RATE_LIMIT": "1000/min"})
    for name in ("text.json", "image_caption.json"):
        r = post(lucy, fixture_bytes(name))
        assert r.status_code == 200, r.text
    wait_transcribed(lucy, n_audio)
    lucy.wait_for(lambda: lucy.get("/search", params={"q": "invoice"}).json()["count"] >= 1,
                  timeout=30, what="messages indexed")
    r = run_node(lucy.url, {"E2E_ARTEFACTS": artefacts_dir()}, script="forget.test.js")
    assert r.returncode == 0, "browser test failed:\n" + r.stdout[-8000:] + r.stderr[-4000:]
    assert re.search(r"^4 passed, 0 failed$", r.stdout, re.M), r.stdout
    for name in ("recording-downloads", "recording-delete-confirm", "recording-forgotten",
                 "message-delete-confirm", "person-delete-confirm", "person-forgotten"):
        assert os.path.getsize(os.path.join(artefacts_dir(), name + ".png")) > 1000, name
