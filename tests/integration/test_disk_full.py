"""Disk pressure, for real: the data dir on a small tmpfs, filled by a
filler file, then freed — and a store made read-only by remounting. Needs
root (CI is root); skipped with a reason elsewhere."""
import os
import subprocess
import time

from conftest import BUILD_DIR, fill, needs_root
from test_scan import tiny_wavs

MIB = 1024 * 1024


def disk_item(doc, path):
    for item in doc["checks"]["disk:free"]:
        if item["componentId"] == path:
            return item
    raise AssertionError("no disk:free item for %s in %r" % (path, doc))


def live_is_fast(lucy):
    t0 = time.time()
    r = lucy.get("/health/live", timeout=2)
    assert r.status_code == 200
    return time.time() - t0


@needs_root
def test_disk_fills_and_recovers_without_restart(start_lucy, tmpfs):
    mnt = tmpfs("16m")
    data = os.path.join(mnt, "data")
    env = {
        "LUCY_DISK_WARN_PCT": "0", "LUCY_DISK_WARN_MB": "8",
        "LUCY_DISK_CRITICAL_PCT": "0", "LUCY_DISK_CRITICAL_MB": "4",
        "LUCY_DISK_RESERVE_MB": "1", "LUCY_DISK_INTERVAL_MS": "200",
    }
    lucy = start_lucy(env=env, data_dir=data)
    reserve = os.path.join(data, "reserve.bin")
    lucy.wait_for(lambda: os.path.exists(reserve), what="reserve file created")
    assert os.path.getsize(reserve) == 1 * MIB

    def status():
        r = lucy.get("/health")
        return r.status_code, r.json()

    code, doc = status()
    assert code == 200 and disk_item(doc, data)["status"] == "pass"

    # warn: about 6 MiB left
    filler = fill(mnt, leave_bytes=6 * MIB, name="filler1")
    lucy.wait_for(lambda: disk_item(status()[1], data)["status"] == "warn", what="disk warn")
    code, doc = status()
    item = disk_item(doc, data)
    assert code == 200
    assert "level warn" in item["output"] and "MiB free" in item["output"]
    assert doc["dependencies"]["disk"].startswith("warning")
    assert os.path.exists(reserve)  # warn keeps the reserve
    live_is_fast(lucy)

    # critical: fill up completely; the reserve is released, and since even
    # with its space back the disk stays critical, readiness fails
    filler2 = fill(mnt, leave_bytes=0, name="filler2")
    lucy.wait_for(lambda: not os.path.exists(reserve), what="reserve released")
    lucy.wait_for(lambda: status()[0] == 503, what="readiness fails")
    code, doc = status()
    item = disk_item(doc, data)
    assert item["status"] == "fail"
    assert "level critical" in item["output"] and "reserve" in item["output"]
    assert doc["status"] == "fail"
    for _ in range(20):
        assert live_is_fast(lucy) < 1.0
    assert any(l.get("msg") == "disk critical: reserve file released" for l in lucy.log_lines())

    # recovery: remove the fillers; levels go back to ok and the reserve
    # comes back, without a restart
    os.unlink(filler2)
    os.unlink(filler)
    lucy.wait_for(lambda: status()[0] == 200 and disk_item(status()[1], data)["status"] == "pass",
                  what="disk ok again")
    lucy.wait_for(lambda: os.path.exists(reserve), what="reserve recreated")
    assert os.path.getsize(reserve) == 1 * MIB
    assert lucy.proc.poll() is None
    metrics = lucy.get("/metrics").text
    assert "lucy_disk_reserve_present 1" in metrics


def test_store_not_writable_fails_readiness(start_lucy, tmp_path):
    """The store's file system starts failing writes (EIO) while lucy runs.

    A tmpfs cannot be remounted read-only while SQLite holds its files open
    for writing (mount answers "busy"), so the fault is injected at the
    system-call boundary by tests/crash/iofail.c (LD_PRELOAD), switched on
    and off by a marker file."""
    data = str(tmp_path / "data")
    marker = str(tmp_path / "iofail-marker")
    lucy = start_lucy(data_dir=data, env={
        "LD_PRELOAD": os.path.join(BUILD_DIR, "tests", "crash", "libiofail.so"),
        "LUCY_IOFAIL_DIR": data, "LUCY_IOFAIL_MARKER": marker,
        "LUCY_DISK_RESERVE_MB": "0"})
    assert lucy.get("/health").status_code == 200
    with open(marker, "w") as f:
        f.write("EIO")
    lucy.wait_for(lambda: lucy.get("/health").status_code == 503, timeout=30,
                  what="readiness fails on an unwritable store")
    doc = lucy.get("/health").json()
    assert doc["status"] == "fail"
    store = doc["checks"]["store:writable"][0]
    assert store["status"] == "fail"
    assert "not writable" in doc["dependencies"]["store"]
    assert "read-write" in store["output"]
    for _ in range(10):
        assert live_is_fast(lucy) < 1.0
    os.unlink(marker)
    lucy.wait_for(lambda: lucy.get("/health").status_code == 200, timeout=30,
                  what="readiness recovers once writable")
    assert lucy.get("/health").json()["checks"]["store:writable"][0]["status"] == "pass"


@needs_root
def test_starts_on_a_full_disk_after_a_clean_stop(start_lucy, tmpfs):
    """A clean stop must not leave lucy unable to start on a disk that
    filled up meanwhile (found by the fault-injection review: SQLite deleted
    its -wal/-shm files on close and could not recreate them)."""
    mnt = tmpfs("16m")
    data = os.path.join(mnt, "data")
    env = {"LUCY_DISK_RESERVE_MB": "0", "LUCY_DISK_CRITICAL_MB": "1", "LUCY_DISK_WARN_MB": "2"}
    lucy = start_lucy(env=env, data_dir=data)
    assert lucy.get("/search?q=anything").status_code == 200
    assert lucy.stop() == 0
    filler = fill(mnt, leave_bytes=0)
    lucy = start_lucy(env=env, data_dir=data)  # must start
    assert lucy.get("/health/live").status_code == 200
    r = lucy.get("/search?q=anything")
    assert r.status_code == 200, r.text  # reads keep working
    lucy.wait_for(lambda: lucy.get("/health").status_code == 503, what="critical, no reserve")
    os.unlink(filler)
    lucy.wait_for(lambda: lucy.get("/health").status_code == 200, timeout=30, what="recovery")


def stored_paths(data):
    import sqlite3
    con = sqlite3.connect(os.path.join(data, "lucy.db"), timeout=5)
    try:
        return con.execute("SELECT count(*) FROM recording_paths").fetchone()[0]
    finally:
        con.close()


@needs_root
def test_scan_failed_on_full_disk_is_retried_when_space_returns(start_lucy, tmpfs, tmp_path):
    """Many new files arrive while the data dir's tmpfs is full: the scan's
    store writes fail part-way. Once the filler is removed the scanner scans
    again by itself - no manual rescan, no waiting for LUCY_SCAN_INTERVAL_S
    (an hour here) - and every file is stored."""
    n = 1500
    mnt = tmpfs("16m")
    data = os.path.join(mnt, "data")
    rec = str(tmp_path / "recordings")
    os.makedirs(rec)
    env = {
        "LUCY_RECORDINGS_DIRS": rec, "LUCY_SCAN_SETTLE_S": "0", "LUCY_SCAN_INTERVAL_S": "3600",
        "LUCY_DISK_RESERVE_MB": "0", "LUCY_DISK_CRITICAL_MB": "1", "LUCY_DISK_WARN_MB": "2",
        "LUCY_DISK_INTERVAL_MS": "100", "LUCY_ASR_ENGINE": "http",
        "LUCY_ASR_URL": "http://127.0.0.1:9/v1/audio/transcriptions"}
    lucy = start_lucy(data_dir=data, env=env)  # creates the store
    assert lucy.stop() == 0
    # The files arrive while lucy is down and the disk is nearly full: the
    # start-up scan fails part-way, and no inotify event comes after it.
    tiny_wavs(rec, n)
    filler = fill(mnt, leave_bytes=256 * 1024)
    lucy = start_lucy(data_dir=data, env=env)
    lucy.wait_for(lambda: [l for l in lucy.log_lines() if l.get("msg") == "scan failed"],
                  timeout=30, what="the start-up scan failed on the full disk")
    assert stored_paths(data) < n
    check = lucy.wait_for(
        lambda: (lambda c: c["status"] == "warn" and c)(lucy.get("/health").json()["checks"]["call_recordings:scan"][0]),
        timeout=10, what="scan check warns")
    assert "failed" in check["output"], check

    time.sleep(3)  # several disk polls and retry looks while still critical
    assert stored_paths(data) < n
    os.unlink(filler)
    lucy.wait_for(lambda: stored_paths(data) == n, timeout=60, interval=0.5,
                  what="every file stored without a manual rescan")
    lucy.wait_for(lambda: lucy.get("/health").json()["checks"]["call_recordings:scan"][0]["status"] == "pass",
                  timeout=30, what="scan check passes again")
