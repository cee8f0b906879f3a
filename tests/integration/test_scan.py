"""The call-recordings scanner (DESIGN §6) through `lucy scan DIR --json`
and the scanner thread of `lucy serve`.

Real inputs: the recordings in tests/fixtures/audio, plus odd files made
here (a truncated MP4, an Ogg/Opus voice note named .m4a, 30 s of silence,
a non-UTF-8 name, a symlink loop, a sparse placeholder, sync artefacts,
damaged tags). Locks are injected for real with the LD_PRELOAD shim
tests/faults/lockshim.c: open() or read() fail with EDEADLK/EAGAIN/...
for the paths named in its control file.
"""
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import BUILD_DIR, FIXTURES, LUCY_BIN, SAN_ENV, needs_root

AUDIO = os.path.join(FIXTURES, "audio")
SHIM = os.path.join(BUILD_DIR, "tests", "faults", "liblockshim.so")
SUMMARY_KEYS = ["files_seen", "new", "changed", "unchanged", "locked", "placeholder", "ignored",
                "changing", "corrupt", "permission_denied", "io_error", "unsupported", "missing",
                "unavailable", "orphan_sidecars", "bytes_hashed", "duration_ms", "errors_by_errno"]
RECORDINGS = ["goforward.m4a", "librivox-0870.m4a", "librivox-0880.m4a", "librivox-0890.m4a",
              "cards-001.ogg", "cards-002-8k.wav", "cards-003-stereo.m4a"]
HOUR_AGO = time.time() - 3600


def base_env(data_dir, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LUCY_", "WHATSAPP_", "REDIS_", "QDRANT_", "LD_PRELOAD", "LOCKSHIM"))}
    env.update(SAN_ENV)
    env.update({"LUCY_DATA_DIR": str(data_dir), "LUCY_SCAN_SETTLE_S": "0",
                "LUCY_DISK_RESERVE_MB": "0"})
    env.update(extra or {})
    return env


def scan(data_dir, *dirs, env=None, timeout=120):
    """Runs `lucy scan DIR... --json`; returns (summary, log lines)."""
    p = subprocess.run([LUCY_BIN, "scan"] + [str(d) for d in dirs] + ["--json"],
                       env=base_env(data_dir, env), capture_output=True, timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 0, err[-4000:]
    for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert bad not in err, err[-6000:]
    summary = json.loads(p.stdout)
    assert list(summary) == SUMMARY_KEYS
    logs = []
    for line in err.splitlines():
        try:
            logs.append(json.loads(line))
        except ValueError:
            logs.append({"raw": line})
    return summary, logs


def tiny_wavs(folder, n):
    """n distinct 0.1 s 8 kHz WAVs (1.6 KB each) named call-NNNNN.wav,
    made with the stdlib; the same n gives the same bytes every time."""
    import struct
    import wave
    os.makedirs(str(folder), exist_ok=True)
    for i in range(n):
        with wave.open(os.path.join(str(folder), "call-%05d.wav" % i), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(struct.pack("<800h", *[(i * 7 + k * 13) % 2000 - 1000 for k in range(800)]))
        age(os.path.join(str(folder), "call-%05d.wav" % i))


def db(data_dir):
    return sqlite3.connect(os.path.join(str(data_dir), "lucy.db"))


def age(path, when=HOUR_AGO):
    os.utime(path, (when, when), follow_symlinks=False)


def copy_fixture(name, dest):
    shutil.copyfile(os.path.join(AUDIO, name), dest)
    age(dest)


def ffprobe_duration(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                          "-of", "default=nw=1:nk=1", path], capture_output=True, check=True)
    return float(out.stdout)


def counts(summary):
    return {k: v for k, v in summary.items()
            if k not in ("duration_ms", "bytes_hashed", "errors_by_errno") and v}


@pytest.fixture
def odd_folder(tmp_path):
    """Every fixture recording plus the odd inputs of issue 3."""
    d = tmp_path / "recordings"
    d.mkdir()
    for name in RECORDINGS:
        copy_fixture(name, str(d / name))
    # An MP4 with its index at the end, cut at 10 KB: the index is gone.
    with open(os.path.join(AUDIO, "librivox-0870.m4a"), "rb") as f:
        (d / "truncated.m4a").write_bytes(f.read(10240))
    # An Ogg/Opus voice note named .m4a: probed by content.
    copy_fixture("cards-001.ogg", str(d / "voice-note.m4a"))
    # 30 s of silence: a recording all the same.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono",
                    "-t", "30", "-c:a", "aac", str(d / "silence.m4a")], check=True)
    # A file name that is not UTF-8 (Latin-1 é).
    bad_name = os.path.join(bytes(d), b"appel-caf\xe9.m4a")
    shutil.copyfile(os.path.join(AUDIO, "goforward.m4a").encode(), bad_name)
    # Damaged tags: the title is not valid UTF-8; the audio is fine.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", os.path.join(AUDIO, "librivox-0880.m4a"),
                    "-c", "copy", "-metadata", "title=Call with Bob", "-metadata",
                    "date=2024-05-01", str(d / "tagged.m4a")], check=True)
    data = (d / "tagged.m4a").read_bytes()
    i = data.index(b"Call with Bob")
    (d / "tagged.m4a").write_bytes(data[:i] + b"Call \xff\xfe Bob" + data[i + 13:])
    # A cloud placeholder: sparse, no blocks allocated.
    subprocess.run(["truncate", "-s", "1M", str(d / "placeholder.m4a")], check=True)
    # Zero-length and sync artefacts: never read.
    (d / "empty.m4a").write_bytes(b"")
    for name in ("._goforward.m4a", "call.m4a.partial", "x.tmp", ".dropbox.cache", "~lock.m4a"):
        (d / name).write_bytes(b"not audio")
    # Not audio at all.
    (d / "notes.txt").write_bytes(b"call Bob back on Monday\n")
    # A symlink loop and a dangling symlink.
    (d / "sub").mkdir()
    os.symlink("..", str(d / "sub" / "loop"))
    os.symlink("nowhere", str(d / "dangling.m4a"))
    for name in os.listdir(bytes(d)):
        age(os.path.join(bytes(d), name))
    return d


def test_odd_inputs_each_get_their_outcome(tmp_path, odd_folder):
    data = tmp_path / "data"
    summary, logs = scan(data, odd_folder)
    # 7 fixtures + voice note + silence + non-UTF-8 name + tagged = 11 new
    assert counts(summary) == {
        "files_seen": 20, "new": 11, "corrupt": 1, "placeholder": 1, "ignored": 6,
        "unsupported": 1,
    }, summary
    assert summary["errors_by_errno"] == {}
    assert summary["bytes_hashed"] > 0
    assert any(l.get("msg") == "scan finished" and l.get("level") == "info" for l in logs)

    con = db(data)
    rows = dict(con.execute("SELECT display_path, status FROM recording_paths"))
    root = str(odd_folder)
    assert rows[root + "/truncated.m4a"] == "corrupt"
    assert rows[root + "/notes.txt"] == "unsupported"
    assert rows[root + "/appel-caf\ufffd.m4a"] == "recording"
    # The non-UTF-8 path is kept byte-exact.
    raw = con.execute("SELECT path FROM recording_paths WHERE display_path LIKE '%appel%'").fetchone()[0]
    assert bytes(raw) == bytes(odd_folder) + b"/appel-caf\xe9.m4a"
    # The corrupt file keeps the demuxer's reason.
    reason = con.execute("SELECT last_error FROM recording_paths WHERE status = 'corrupt'").fetchone()[0]
    assert "Invalid data" in reason

    def recording(name):
        return con.execute(
            "SELECT r.id, r.codec, r.duration_s, r.sample_rate, r.channels, r.bit_rate, r.tags,"
            " r.warning FROM recordings r JOIN recording_paths p ON p.recording_id = r.id"
            " WHERE p.display_path = ?", (root + "/" + name,)).fetchone()

    # The .m4a voice note is Ogg/Opus by content - and the same content as cards-001.ogg.
    assert recording("voice-note.m4a")[1] == "opus"
    assert recording("voice-note.m4a")[0] == recording("cards-001.ogg")[0]
    assert abs(recording("silence.m4a")[2] - 30.0) < 0.05
    # Damaged tags: still a recording, tags left out, a warning kept.
    tagged = recording("tagged.m4a")
    assert "title" not in json.loads(tagged[6])
    assert "UTF-8" in tagged[7]
    # Metadata: ffprobe's format duration within 50 ms, and the stream parameters.
    expected = {"goforward.m4a": ("aac", 16000, 1), "cards-001.ogg": ("opus", 48000, 1),
                "cards-002-8k.wav": ("pcm_s16le", 8000, 1),
                "cards-003-stereo.m4a": ("aac", 44100, 2)}
    for name in RECORDINGS:
        r = recording(name)
        assert abs(r[2] - ffprobe_duration(os.path.join(AUDIO, name))) <= 0.05, (name, r)
        assert r[5] > 0
        if name in expected:
            assert r[1:2] + r[3:5] == expected[name], (name, r)
    # Same content at two paths is one recording: goforward + the non-UTF-8 copy.
    assert recording("goforward.m4a")[0] == recording("appel-caf\ufffd.m4a")[0]
    n_recordings = con.execute("SELECT count(*) FROM recordings").fetchone()[0]
    assert n_recordings == 9
    # Each new recording has exactly one transcription job.
    assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 9
    assert con.execute("SELECT count(DISTINCT recording_id) FROM jobs").fetchone()[0] == 9


def test_rescan_missing_unavailable(tmp_path, odd_folder):
    data = tmp_path / "data"
    first, _ = scan(data, odd_folder)
    again, _ = scan(data, odd_folder)
    # Nothing is read again (by stat). A known corrupt or unsupported file
    # keeps its outcome in every summary, so /health, the doctor and the
    # UI's "Last scan" still show it; only recordings count as unchanged.
    assert again["bytes_hashed"] == 0
    assert counts(again) == {"files_seen": 20, "unchanged": 11, "corrupt": 1, "unsupported": 1,
                             "placeholder": 1, "ignored": 6}, again
    assert again["unchanged"] == first["new"]
    assert (again["corrupt"], again["unsupported"]) == (first["corrupt"], first["unsupported"])
    # ... and not logged again as newly corrupt.
    third, logs = scan(data, odd_folder)
    assert (third["corrupt"], third["unsupported"]) == (1, 1)
    assert not [l for l in logs if l.get("msg") == "recording file corrupt"]

    os.remove(str(odd_folder / "librivox-0890.m4a"))
    gone, _ = scan(data, odd_folder)
    assert gone["missing"] == 1 and gone["unchanged"] == 10
    assert (gone["corrupt"], gone["unsupported"]) == (1, 1)
    con = db(data)
    assert con.execute("SELECT scan_status FROM recordings r JOIN recording_paths p ON"
                       " p.recording_id = r.id WHERE p.display_path LIKE '%0890%'").fetchone() == ("missing",)

    # The whole folder vanishes (an unmounted volume): unavailable, nothing deleted.
    moved = tmp_path / "elsewhere"
    os.rename(str(odd_folder), str(moved))
    vanished, logs = scan(data, odd_folder)
    assert vanished["unavailable"] == 12 and vanished["files_seen"] == 0 and vanished["missing"] == 0
    assert any(l.get("msg") == "recordings folder unavailable" for l in logs)
    con = db(data)
    assert con.execute("SELECT count(*) FROM recordings WHERE scan_status = 'unavailable'").fetchone()[0] == 8
    assert con.execute("SELECT count(*) FROM recordings").fetchone()[0] == 9

    # An emptied folder (a stopped sync client) is unavailable too.
    odd_folder.mkdir()
    emptied, _ = scan(data, odd_folder)
    assert emptied["unavailable"] == 12

    # Back again: unchanged, available.
    odd_folder.rmdir()
    os.rename(str(moved), str(odd_folder))
    back, _ = scan(data, odd_folder)
    assert back["unchanged"] == 10 and back["unavailable"] == 0 and back["bytes_hashed"] == 0
    assert (back["corrupt"], back["unsupported"]) == (1, 1)
    con = db(data)
    assert con.execute("SELECT count(*) FROM recordings WHERE scan_status = 'ok'").fetchone()[0] == 8


def test_changed_and_fixed_files(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    data = tmp_path / "data"
    copy_fixture("goforward.m4a", str(d / "a.m4a"))
    with open(os.path.join(AUDIO, "librivox-0870.m4a"), "rb") as f:
        (d / "b.m4a").write_bytes(f.read(10240))
    age(str(d / "b.m4a"))
    s, _ = scan(data, d)
    assert (s["new"], s["corrupt"]) == (1, 1)
    # a.m4a gets other content; b.m4a is completed by the sync client.
    copy_fixture("librivox-0880.m4a", str(d / "a.m4a"))
    age(str(d / "a.m4a"), HOUR_AGO + 60)
    copy_fixture("librivox-0870.m4a", str(d / "b.m4a"))
    age(str(d / "b.m4a"), HOUR_AGO + 60)
    s, _ = scan(data, d)
    assert (s["changed"], s["new"], s["corrupt"]) == (1, 1, 0), s
    # Touched without a content change: read again, but unchanged.
    age(str(d / "a.m4a"), HOUR_AGO + 120)
    s, _ = scan(data, d)
    assert s["unchanged"] == 2 and s["bytes_hashed"] > 0
    con = db(data)
    assert con.execute("SELECT count(*) FROM recordings").fetchone()[0] == 3
    assert con.execute("SELECT scan_status FROM recordings WHERE id = (SELECT recording_id FROM"
                       " jobs ORDER BY id LIMIT 1)").fetchone() == ("missing",)


def test_rewritten_in_place_with_mtime_restored_is_changed(tmp_path):
    """Same size, same inode, mtime put back with os.utime: only the ctime
    tells; the rescan reads the file and gives it its new id."""
    d = tmp_path / "rec"
    d.mkdir()
    data = tmp_path / "data"
    f = str(d / "call.wav")
    copy_fixture("cards-002-8k.wav", f)
    age(f)
    s, _ = scan(data, d)
    assert s["new"] == 1, s
    before = os.stat(f)
    old_id = db(data).execute("SELECT recording_id FROM recording_paths").fetchone()[0]
    time.sleep(0.02)  # a distinct ctime even on coarse clocks
    with open(f, "r+b") as fh:  # in place: same inode, same size
        fh.seek(before.st_size - 200)
        fh.write(bytes(b ^ 0x55 for b in fh.read(100)))
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(f)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino, before.st_size, before.st_mtime_ns)
    s, _ = scan(data, d)
    assert (s["changed"], s["unchanged"]) == (1, 0), s
    new_id = db(data).execute("SELECT recording_id FROM recording_paths").fetchone()[0]
    assert new_id != old_id
    s, _ = scan(data, d)
    assert (s["unchanged"], s["bytes_hashed"]) == (1, 0), s  # ctime stored: not read again


def test_data_dir_from_before_the_ctime_column_opens(tmp_path):
    """A store without recording_paths.ctime_ns (the previous release):
    migration 43 adds it, nothing is lost, each file is read once more and
    then known by its ctime."""
    d = tmp_path / "rec"
    d.mkdir()
    data = tmp_path / "data"
    copy_fixture("goforward.m4a", str(d / "a.m4a"))
    copy_fixture("cards-001.ogg", str(d / "b.ogg"))
    s, _ = scan(data, d)
    assert s["new"] == 2
    con = db(data)
    ids = sorted(r[0] for r in con.execute("SELECT id FROM recordings"))
    with con:
        con.execute("ALTER TABLE recording_paths DROP COLUMN ctime_ns")
        # As if 43 had not run (the store applies every version it has not
        # recorded).
        con.execute("DELETE FROM schema_version WHERE version = 43")
    con.close()
    s, _ = scan(data, d)
    assert (s["unchanged"], s["new"], s["changed"]) == (2, 0, 0), s
    assert sorted(r[0] for r in db(data).execute("SELECT id FROM recordings")) == ids
    s, _ = scan(data, d)
    assert (s["unchanged"], s["bytes_hashed"]) == (2, 0), s


def test_follow_symlinks_with_loops(tmp_path):
    d = tmp_path / "rec"
    (d / "a" / "b").mkdir(parents=True)
    copy_fixture("goforward.m4a", str(d / "a" / "b" / "x.m4a"))
    os.symlink("../..", str(d / "a" / "b" / "up"))       # loop to an ancestor
    os.symlink(str(d / "a"), str(d / "alias"))          # the same dir twice
    other = tmp_path / "outside"
    other.mkdir()
    copy_fixture("librivox-0880.m4a", str(other / "y.m4a"))
    os.symlink(str(other), str(d / "linked"))
    s, _ = scan(tmp_path / "d1", d, timeout=60)
    assert (s["files_seen"], s["new"]) == (1, 1)  # directory symlinks not followed
    s, _ = scan(tmp_path / "d2", d, env={"LUCY_FOLLOW_SYMLINKS": "1"}, timeout=60)
    # Each directory entered once; "linked" leads outside the root: skipped.
    assert (s["files_seen"], s["new"], s["ignored"]) == (1, 1, 1), s


def test_follow_symlinks_never_leaves_the_roots(tmp_path):
    """LUCY_FOLLOW_SYMLINKS=1 with a symlink to / and one to a sibling
    folder holding real audio: neither is read (each counted as ignored,
    with a log line); a symlink to a subfolder inside the root is followed
    and its file scanned once. A second root is inside too."""
    d = tmp_path / "rec"
    (d / "inner").mkdir(parents=True)
    copy_fixture("goforward.m4a", str(d / "inner" / "x.m4a"))
    os.symlink("/", str(d / "system"))
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    copy_fixture("librivox-0880.m4a", str(sibling / "y.m4a"))
    os.symlink(str(sibling), str(d / "outside"))
    os.symlink(str(sibling / "y.m4a"), str(d / "outside-file.m4a"))
    os.symlink("inner", str(d / "alias"))
    other_root = tmp_path / "other"
    other_root.mkdir()
    copy_fixture("cards-001.ogg", str(other_root / "z.ogg"))
    os.symlink(str(other_root), str(d / "to-other-root"))

    s, logs = scan(tmp_path / "d1", d, env={"LUCY_FOLLOW_SYMLINKS": "1"}, timeout=60)
    assert (s["files_seen"], s["new"], s["ignored"]) == (1, 1, 4), s
    skipped = [l for l in logs if l.get("msg", "").startswith("symlink leads outside")]
    assert {os.path.basename(l["path"]) for l in skipped} == {
        "system", "outside", "outside-file.m4a", "to-other-root"}, logs
    assert "LUCY_RECORDINGS_DIRS" in skipped[0]["hint"]
    paths = [r[0] for r in db(tmp_path / "d1").execute("SELECT path FROM recording_paths")]
    assert len(paths) == 1 and paths[0].endswith(b"x.m4a"), paths

    # With both roots configured, the link into the other root stays inside.
    # (z.ogg is seen through the link and in its own root: one recording.)
    s, _ = scan(tmp_path / "d2", d, other_root, env={"LUCY_FOLLOW_SYMLINKS": "1"}, timeout=60)
    assert (s["files_seen"], s["ignored"]) == (3, 3), s
    assert db(tmp_path / "d2").execute("SELECT count(*) FROM recordings").fetchone()[0] == 2


def test_settle_time_and_file_growing_during_read(tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    data = tmp_path / "data"
    copy_fixture("goforward.m4a", str(d / "fresh.m4a"))
    age(str(d / "fresh.m4a"), time.time())
    s, _ = scan(data, d, env={"LUCY_SCAN_SETTLE_S": "30"})
    assert s["changing"] == 1 and s["bytes_hashed"] == 0

    # A WAV being appended to while the scan hashes it: fstat before and
    # after the read differ, so no hash is stored.
    growing = d / "growing.wav"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono",
                    "-t", "1500", "-c:a", "pcm_s16le", str(growing)], check=True)
    os.remove(str(d / "fresh.m4a"))
    stop = threading.Event()

    def append():
        with open(str(growing), "ab") as f:
            while not stop.is_set():
                f.write(b"\0" * 4096)
                f.flush()
                time.sleep(0.001)

    t = threading.Thread(target=append)
    t.start()
    try:
        time.sleep(0.05)
        s, _ = scan(data, d)
    finally:
        stop.set()
        t.join()
    assert s["changing"] == 1 and s["new"] == 0, s
    con = db(data)
    assert con.execute("SELECT count(*) FROM recordings").fetchone()[0] == 0
    # Once it is quiet it is a recording.
    s, _ = scan(data, d)
    assert s["new"] == 1


def write_control(path, lines):
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, str(path))


@pytest.fixture
def locked_folder(tmp_path):
    if not os.path.exists(SHIM):
        pytest.skip("lock shim not built: %s" % SHIM)
    d = tmp_path / "synced"
    d.mkdir()
    for i in range(300):
        copy_fixture("goforward.m4a", str(d / ("call-%03d.m4a" % i)))
    return d


def test_one_locked_file_is_warned_once(tmp_path):
    """`lucy scan` with one locked file (tests/faults/lockshim.c): one
    warning line about it, not its own line plus the per-scan summary line
    naming the same file."""
    if not os.path.exists(SHIM):
        pytest.skip("lock shim not built: %s" % SHIM)
    d = tmp_path / "rec"
    d.mkdir()
    copy_fixture("goforward.m4a", str(d / "a.m4a"))
    ctl = tmp_path / "locks"
    write_control(ctl, ["open EDEADLK %s" % (d / "a.m4a")])
    s, logs = scan(tmp_path / "data", d, env={"LD_PRELOAD": SHIM, "LOCKSHIM_FILE": str(ctl)})
    assert s["locked"] == 1
    warnings = [l for l in logs if l.get("level") == "warning"]
    assert len(warnings) == 1 and warnings[0]["msg"] == "recording file locked", warnings
    # The next scan: the file has no line of its own any more (not newly
    # locked), so the per-scan line reports it - once.
    s, logs = scan(tmp_path / "data", d, env={"LD_PRELOAD": SHIM, "LOCKSHIM_FILE": str(ctl)})
    warnings = [l for l in logs if l.get("level") == "warning"]
    assert [l["msg"] for l in warnings] == ["recording files locked"], warnings


def test_300_locked_files(tmp_path, locked_folder):
    ctl = tmp_path / "locks"
    env = {"LD_PRELOAD": SHIM, "LOCKSHIM_FILE": str(ctl)}
    data = tmp_path / "data"
    write_control(ctl, ["open EDEADLK %s/" % locked_folder])
    s, logs = scan(data, locked_folder, env=env)
    assert s["locked"] == 300 and s["files_seen"] == 300 and s["new"] == 0
    assert s["errors_by_errno"] == {"EDEADLK": 300}
    warnings = [l for l in logs if l.get("level") == "warning"]
    assert 1 <= len(warnings) <= 8, warnings
    summary_lines = [l for l in warnings if l.get("msg") == "recording files locked"]
    assert len(summary_lines) == 1 and summary_lines[0]["count"] == 300
    assert 1 <= len(summary_lines[0]["examples"]) <= 5

    # Rescan while still locked: counted again, no new "first locked" lines.
    s, logs = scan(data, locked_folder, env=env)
    assert s["locked"] == 300 and s["errors_by_errno"] == {"EDEADLK": 300}
    assert not [l for l in logs if l.get("msg") == "recording file locked"]

    # EAGAIN counts under its own name.
    write_control(ctl, ["open EAGAIN %s/" % locked_folder])
    s, _ = scan(data, locked_folder, env=env)
    assert s["locked"] == 300 and s["errors_by_errno"] == {"EAGAIN": 300}

    # Read mode: the open succeeds, the reads fail - still locked, not corrupt.
    write_control(ctl, ["read EDEADLK %s/" % locked_folder])
    s, _ = scan(data, locked_folder, env=env)
    assert s["locked"] == 300 and s["corrupt"] == 0 and s["errors_by_errno"] == {"EDEADLK": 300}

    # Lock lifted: every file is read, one recording with 300 paths.
    write_control(ctl, [])
    s, _ = scan(data, locked_folder, env=env)
    assert s["new"] == 300 and s["locked"] == 0 and s["errors_by_errno"] == {}
    con = db(data)
    assert con.execute("SELECT count(*) FROM recordings").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM recording_paths WHERE status = 'recording'").fetchone()[0] == 300
    assert con.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


def test_other_errors_by_errno_name(tmp_path, locked_folder):
    ctl = tmp_path / "locks"
    env = {"LD_PRELOAD": SHIM, "LOCKSHIM_FILE": str(ctl)}
    write_control(ctl, ["open EACCES %s/call-000.m4a" % locked_folder,
                        "read EIO %s/call-001.m4a" % locked_folder,
                        "open EBUSY %s/call-002.m4a" % locked_folder])
    s, _ = scan(tmp_path / "data", locked_folder, env=env)
    assert (s["permission_denied"], s["io_error"], s["locked"], s["new"]) == (1, 1, 1, 297), s
    assert s["errors_by_errno"] == {"EACCES": 1, "EIO": 1, "EBUSY": 1}


def test_mistyped_recordings_folder_warns_readiness(start_lucy, tmp_path):
    """A folder in LUCY_RECORDINGS_DIRS that does not exist: the scanner
    check warns naming it and saying what to do (not just a log line);
    once the folder is there and scanned, the check passes."""
    good = tmp_path / "rec"
    good.mkdir()
    copy_fixture("goforward.m4a", str(good / "a.m4a"))
    typo = tmp_path / "recordigns"
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": "%s:%s" % (good, typo),
                           "LUCY_SCAN_SETTLE_S": "0", "LUCY_SCAN_INTERVAL_S": "3600"})

    def scan_check():
        return lucy.get("/health").json()["checks"]["call_recordings:scan"][0]
    check = lucy.wait_for(lambda: (lambda c: c["status"] == "warn" and c)(scan_check()),
                          timeout=15, what="the scan check warns")
    assert str(typo) in check["output"], check
    assert "ENOENT" in check["output"] and "LUCY_RECORDINGS_DIRS" in check["output"], check
    assert lucy.get("/health").status_code == 200  # a warning, not a failure

    typo.mkdir()
    copy_fixture("cards-001.ogg", str(typo / "b.ogg"))
    assert lucy.post("/recordings/scan").status_code == 200
    lucy.wait_for(lambda: scan_check()["status"] == "pass", timeout=15, what="the check passes")


def test_serve_scans_at_start_and_on_change(start_lucy, tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    copy_fixture("goforward.m4a", str(d / "a.m4a"))
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(d), "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_SCAN_INTERVAL_S": "3600"})

    def finished():
        return [l for l in lucy.log_lines() if l.get("msg") == "scan finished"]

    first = lucy.wait_for(finished, what="the first scan")[0]
    assert first["new"] == 1
    # A new file: inotify wakes the scanner well before the hour is up. (The
    # log keeps one "scan finished" line a minute, so watch the store.)
    copy_fixture("cards-003-stereo.m4a", str(d / "b.m4a"))

    def stored():
        con = db(lucy.data_dir)
        try:
            return con.execute("SELECT count(*) FROM recording_paths WHERE status = 'recording'"
                               ).fetchone()[0] == 2
        finally:
            con.close()

    lucy.wait_for(stored, timeout=30, what="an inotify-triggered scan")


def test_serve_locked_file_then_lifted(start_lucy, tmp_path):
    if not os.path.exists(SHIM):
        pytest.skip("lock shim not built: %s" % SHIM)
    d = tmp_path / "rec"
    d.mkdir()
    copy_fixture("goforward.m4a", str(d / "free.m4a"))
    copy_fixture("librivox-0880.m4a", str(d / "held.m4a"))
    ctl = tmp_path / "locks"
    write_control(ctl, ["open EDEADLK %s/held.m4a" % d])
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(d), "LUCY_SCAN_SETTLE_S": "0",
                           "LD_PRELOAD": SHIM, "LOCKSHIM_FILE": str(ctl)})
    first = lucy.wait_for(lambda: [l for l in lucy.log_lines() if l.get("msg") == "scan finished"],
                          what="the first scan")[0]
    assert (first["new"], first["locked"]) == (1, 1)
    assert first["errors_by_errno"] == {"EDEADLK": 1}
    warned = [l for l in lucy.log_lines() if l.get("msg") == "recording file locked"]
    assert len(warned) == 1 and warned[0]["errno"] == "EDEADLK"
    # Still held: an explicit scan retries at once and finds it locked again.
    r = lucy.post("/recordings/scan")
    assert r.status_code == 200 and r.json()["locked"] == 1
    # Lifted: the next scan reads it.
    write_control(ctl, [])
    r = lucy.post("/recordings/scan")
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == SUMMARY_KEYS
    assert (body["new"], body["locked"], body["unchanged"]) == (1, 0, 1), body


def test_inotify_watch_limit_logged_once(start_lucy, tmp_path):
    if not os.path.exists(SHIM):
        pytest.skip("lock shim not built: %s" % SHIM)
    d = tmp_path / "rec"
    (d / "sub").mkdir(parents=True)
    copy_fixture("goforward.m4a", str(d / "a.m4a"))
    ctl = tmp_path / "locks"
    write_control(ctl, ["watch ENOSPC %s/" % d])  # the kernel's answer at the watch limit
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(d), "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_SCAN_INTERVAL_S": "1", "LD_PRELOAD": SHIM,
                           "LOCKSHIM_FILE": str(ctl)})
    lucy.wait_for(lambda: [l for l in lucy.log_lines() if l.get("msg") == "scan finished"],
                  what="the first scan")
    # Periodic scans carry on without inotify: a new file is found.
    copy_fixture("cards-003-stereo.m4a", str(d / "sub" / "b.m4a"))

    def stored():
        con = db(lucy.data_dir)
        try:
            return con.execute("SELECT count(*) FROM recording_paths").fetchone()[0] == 2
        finally:
            con.close()

    lucy.wait_for(stored, timeout=20, what="a periodic scan")
    time.sleep(1.5)
    limit = [l for l in lucy.log_lines() if l.get("msg") == "inotify watch limit reached"]
    assert len(limit) == 1 and limit[0]["errno"] == "ENOSPC", limit


def test_nested_roots_share_what_is_known(tmp_path):
    d = tmp_path / "rec"
    (d / "2024").mkdir(parents=True)
    copy_fixture("goforward.m4a", str(d / "2024" / "a.m4a"))
    copy_fixture("cards-001.ogg", str(d / "b.ogg"))
    data = tmp_path / "data"
    s, _ = scan(data, d / "2024")
    assert s["new"] == 1
    s, _ = scan(data, d)  # the parent: the file below is known already
    assert (s["new"], s["unchanged"], s["bytes_hashed"]) == (1, 1, 2399), s


@needs_root
def test_recordings_mount_dies_mid_scan(start_lucy, tmpfs):
    """The tmpfs holding the recordings is lazily unmounted (umount -l)
    while the start-up scan works through 8,000 new files: lucy does not
    crash, the scan ends, /health stays 200; the next scan finds the folder
    empty and marks the recordings unavailable (nothing deleted); mounting
    the volume back makes them available again."""
    n = 8000  # about half a second of scanning: time to unmount in the middle
    rec = tmpfs("64m", name="recordings")
    tiny_wavs(rec, n)
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": rec, "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_SCAN_INTERVAL_S": "3600", "LUCY_ASR_ENGINE": "http",
                           "LUCY_ASR_URL": "http://127.0.0.1:9/v1/audio/transcriptions"})

    def stored():
        con = db(lucy.data_dir)
        try:
            return con.execute("SELECT count(*) FROM recording_paths").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            return 0
        finally:
            con.close()
    lucy.wait_for(lambda: 0 < stored() < n, timeout=30, interval=0.02, what="the scan under way")
    subprocess.run(["umount", "-l", rec], check=True)
    lucy.wait_for(lambda: [l for l in lucy.log_lines() if l.get("msg") in ("scan finished", "scan failed")],
                  timeout=60, what="the interrupted scan ends")
    assert lucy.proc.poll() is None
    assert lucy.get("/health").status_code == 200
    known = stored()
    assert known > 0

    r = lucy.post("/recordings/scan")
    assert r.status_code == 200, r.text
    assert r.json()["unavailable"] == known, r.json()
    assert stored() == known  # nothing deleted
    page = lucy.get("/recordings", params={"status": "unavailable", "limit": 500}).json()
    assert len(page["recordings"]) == 500
    assert lucy.get("/recordings", params={"status": "ok"}).json()["recordings"] == []
    assert lucy.get("/health").status_code == 200

    # The volume comes back with the same files.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", rec], check=True)
    tiny_wavs(rec, n)
    r = lucy.post("/recordings/scan", timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["unavailable"] == 0 and r.json()["files_seen"] == n, r.json()
    assert lucy.get("/recordings", params={"status": "unavailable"}).json()["recordings"] == []
    assert lucy.get("/health").status_code == 200
