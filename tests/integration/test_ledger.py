"""The ingest ledger (DESIGN §16): every file the scanner saw and did not
make a recording of, and every failed transcription, with its outcome,
reason and what to do - through `lucy scan --ledger` and GET /ledger.

The odd inputs are test_scan.py's (odd_folder) plus a lock injected for real
with tests/faults/lockshim.c and sync-cache folders."""
import json
import os
import sqlite3
import subprocess

import pytest

from conftest import LUCY_BIN
from test_scan import (AUDIO, SHIM, age, base_env, copy_fixture, odd_folder,  # noqa: F401
                       scan, write_control)

SYNC_FOLDERS = [".dropbox.cache", ".dropbox", ".sync", ".stfolder", "@eaDir", ".Trash-1000",
                "$RECYCLE.BIN"]


def ledger_cli(data_dir, *args):
    p = subprocess.run([LUCY_BIN, "scan", "--ledger"] + list(args), env=base_env(data_dir),
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    for bad in (b"ERROR: AddressSanitizer", b"runtime error:", b"ERROR: LeakSanitizer"):
        assert bad not in p.stderr, p.stderr.decode()[-6000:]
    return p.stdout.decode()


def ledger_rows(data_dir):
    """{display path relative to root-less form: row} from --ledger --json."""
    rows = [json.loads(line) for line in ledger_cli(data_dir, "--json").splitlines()]
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows)  # one row per path here
    return by_path


@pytest.fixture
def ledger_folder(odd_folder, tmp_path):
    """odd_folder plus every sync-cache folder of §16 holding a copy of a
    recording, and a locked recording (lockshim: open() fails EDEADLK)."""
    d = odd_folder
    for name in SYNC_FOLDERS:  # in phone/: odd_folder has a FILE named .dropbox.cache
        (d / "phone" / name).mkdir(parents=True)
        copy_fixture("goforward.m4a", str(d / "phone" / name / "copy.m4a"))
    copy_fixture("librivox-0890.m4a", str(d / "locked.m4a"))
    ctl = tmp_path / "locks"
    write_control(ctl, ["open EDEADLK %s" % (d / "locked.m4a")])
    if not os.path.exists(SHIM):
        pytest.skip("lock shim not built: %s" % SHIM)
    return d, {"LD_PRELOAD": SHIM, "LOCKSHIM_FILE": str(ctl)}


def test_ledger_names_each_odd_file(tmp_path, ledger_folder):
    d, lock_env = ledger_folder
    data = tmp_path / "data"
    summary, _ = scan(data, d, env=lock_env)
    assert summary["locked"] == 1
    root = str(d)
    rows = ledger_rows(data)
    got = {p[len(root) + 1:]: (r["outcome"], r["reason_code"]) for p, r in rows.items()}
    expected = {
        "truncated.m4a": ("corrupt", "decoder"),
        "notes.txt": ("unsupported", "not_audio"),
        "placeholder.m4a": ("placeholder", "cloud_placeholder"),
        "empty.m4a": ("ignored", "zero_length"),
        "._goforward.m4a": ("ignored", "sync_artefact"),
        "call.m4a.partial": ("ignored", "sync_artefact"),
        "x.tmp": ("ignored", "sync_artefact"),
        ".dropbox.cache": ("ignored", "sync_artefact"),  # a FILE of that name
        "~lock.m4a": ("ignored", "sync_artefact"),
        "dangling.m4a": ("ignored", "ENOENT"),
        "locked.m4a": ("locked", "EDEADLK"),
    }
    for name in SYNC_FOLDERS:
        expected["phone/" + name] = ("ignored", "sync_folder")
    for name, want in expected.items():
        assert got.get(name) == want, (name, got.get(name), sorted(got))
    # Nothing else: every other file is a recording.
    extra = set(got) - set(expected)
    assert all(got[n][0] == "call_metadata" for n in extra), {n: got[n] for n in extra}
    # Reasons are words, advice is there, times are set.
    assert "Invalid data" in rows[root + "/truncated.m4a"]["reason"]
    locked = rows[root + "/locked.m4a"]
    assert locked["next_retry_s"] > locked["first_seen_s"] > 0
    assert "sync client" in locked["advice"]
    for r in rows.values():
        assert r["advice"] and r["first_seen_s"] <= r["last_seen_s"]
    # No copy inside a sync folder became a recording path.
    con = sqlite3.connect(str(data / "lucy.db"))
    inside = [p for (p,) in con.execute("SELECT display_path FROM recording_paths")
              if any("/%s/" % n in p for n in SYNC_FOLDERS)]
    assert inside == []
    # The text form names each file with its outcome and what to do.
    text = ledger_cli(data)
    assert "corrupt                %s/truncated.m4a\n" % root in text
    assert text.count("\n  what to do: ") == len(rows)


def test_rows_leave_when_fixed_or_gone(tmp_path, ledger_folder):
    d, lock_env = ledger_folder
    data = tmp_path / "data"
    scan(data, d, env=lock_env)
    first = ledger_rows(data)
    root = str(d)
    # A rescan of the same files writes nothing new: first_seen stays.
    scan(data, d, env=lock_env)
    again = ledger_rows(data)
    assert {p: r["first_seen_s"] for p, r in again.items()} == \
        {p: r["first_seen_s"] for p, r in first.items()}
    # The lock lifts: a recording. notes.txt goes away. The truncated file
    # is replaced by a good one. The .tmp is deleted.
    os.unlink(str(d / "notes.txt"))
    os.unlink(str(d / "x.tmp"))
    copy_fixture("cards-002-8k.wav", str(d / "truncated.m4a"))
    scan(data, d)
    rows = ledger_rows(data)
    for name in ("locked.m4a", "notes.txt", "truncated.m4a", "x.tmp"):
        assert root + "/" + name not in rows, name
    assert root + "/empty.m4a" in rows


def test_call_metadata_and_failed_transcription(tmp_path):
    """A recording whose call lost a field is a recording and a ledger row;
    a recording whose latest job failed is listed from the jobs table and
    leaves once a retry succeeds (here: the job row moves on)."""
    d = tmp_path / "rec"
    d.mkdir()
    copy_fixture("goforward.m4a", str(d / "20230414_215701.088-0400_in_sim1_+14155550123.m4a"))
    (d / "20230414_215701.088-0400_in_sim1_+14155550123.json").write_text("{not json")
    age(str(d / "20230414_215701.088-0400_in_sim1_+14155550123.json"))
    copy_fixture("cards-001.ogg", str(d / "plain.ogg"))
    data = tmp_path / "data"
    s, _ = scan(data, d)
    assert s["new"] == 2
    rows = ledger_rows(data)
    meta = rows[str(d / "20230414_215701.088-0400_in_sim1_+14155550123.m4a")]
    assert meta["outcome"] == "call_metadata" and "not a JSON object" in meta["reason"]
    assert len(meta["recording_id"]) == 64
    con = sqlite3.connect(str(data / "lucy.db"))
    rid = con.execute("SELECT recording_id FROM recording_paths WHERE display_path LIKE"
                      " '%plain.ogg'").fetchone()[0]
    with con:
        con.execute("UPDATE jobs SET status = 'failed', error_type = 'unsupported_media_type',"
                    " error = 'no audio stream decodes' WHERE recording_id = ?", (rid,))
    rows = ledger_rows(data)
    failed = rows[str(d / "plain.ogg")]
    assert failed["outcome"] == "transcription_failed"
    assert failed["reason"] == "no audio stream decodes" and failed["recording_id"] == rid
    assert "transcribe" in failed["advice"]
    with con:
        con.execute("INSERT INTO jobs (recording_id, status, created_at_s, updated_at_s)"
                    " VALUES (?, 'done', 1, 1)", (rid,))
    assert str(d / "plain.ogg") not in ledger_rows(data)
    # A sidecar that is fixed takes the row away on the next scan.
    side = d / "20230414_215701.088-0400_in_sim1_+14155550123.json"
    side.write_text(json.dumps({"direction": "in", "calls": [{"phone_number": "+14155550123"}]}))
    age(str(side))
    scan(data, d)
    assert ledger_rows(data) == {}


def test_get_ledger_pages_and_filters(start_lucy, tmp_path, odd_folder):
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(odd_folder), "LUCY_SCAN_SETTLE_S": "0"})
    r = lucy.post("/recordings/scan")
    assert r.status_code == 200, r.text
    r = lucy.get("/ledger?limit=500")
    assert r.status_code == 200, r.text
    all_rows = r.json()
    assert all_rows["next_cursor"] is None
    items = all_rows["items"]
    assert sum(all_rows["counts"].values()) == len(items) >= 10
    # Paged two at a time: the same rows, in the same order, none twice.
    paged, cursor = [], ""
    while True:
        r = lucy.get("/ledger", params={"limit": 2, "cursor": cursor or ""})
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        paged += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert paged == items
    ignored = lucy.get("/ledger?outcome=ignored").json()
    assert ignored["items"]
    assert {r["outcome"] for r in ignored["items"]} == {"ignored"}
    assert len(ignored["items"]) == all_rows["counts"]["ignored"]
    for bad in ("outcome=nope", "limit=0", "cursor=zz", "cursor=00.nope"):
        r = lucy.get("/ledger?" + bad)
        assert r.status_code == 400 and r.json()["error_type"] == "bad_request", (bad, r.text)
    err = lucy.get("/ledger?outcome=nope").json()
    assert "corrupt" in err["message"] and "transcription_failed" in err["message"]
