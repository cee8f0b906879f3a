"""lucy backup / lucy restore (DESIGN §15): an online, checked copy while
lucy serves, put back while it does not. Faults for real: a small tmpfs that
fills, kill -9 in the middle of a backup, a daemon holding the data dir."""
import glob
import hashlib
import hmac
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time

import requests

from conftest import LUCY_BIN, SAN_ENV, needs_root

SECRET = "backup-test-secret"


def lucy_cmd(args, data_dir, env=None, timeout=120):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "WHATSAPP_", "REDIS_", "QDRANT_"))}
    e.update(SAN_ENV)
    e.update({"LUCY_DATA_DIR": data_dir, "LUCY_DISK_WARN_MB": "0", "LUCY_DISK_WARN_PCT": "0",
              "LUCY_DISK_CRITICAL_MB": "0", "LUCY_DISK_CRITICAL_PCT": "0"})
    e.update(env or {})
    return subprocess.run([LUCY_BIN] + args, env=e, capture_output=True, timeout=timeout)


def webhook(i):
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "2"},
            "contacts": [{"profile": {"name": "Backup %d" % (i % 16)}, "wa_id": "1555000%04d" % (i % 16)}],
            "messages": [{"from": "1555000%04d" % (i % 16), "id": "wamid.BK%06d" % i,
                          "timestamp": str(1764460800 + i), "type": "text",
                          "text": {"body": "backup message %d" % i}}]}}]}]}).encode()
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sig}


def wamids(db_path):
    con = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {r[0] for r in con.execute("SELECT wamid FROM wa_messages")}
    finally:
        con.close()


def test_backup_while_webhooks_arrive_then_restore_and_serve(start_lucy, tmp_path):
    lucy = start_lucy(env={"WHATSAPP_APP_SECRET": SECRET})
    acked, acked_at, lock, counter = set(), {}, threading.Lock(), [0]
    stop = threading.Event()

    def client():
        s = requests.Session()
        while not stop.is_set():
            with lock:
                i = counter[0]
                counter[0] += 1
            if i >= 1000:
                return
            body, headers = webhook(i)
            r = s.post(lucy.url + "/webhook/whatsapp", data=body, headers=headers, timeout=30)
            assert r.status_code == 200, r.text
            with lock:
                acked.add("wamid.BK%06d" % i)
                acked_at["wamid.BK%06d" % i] = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    lucy.wait_for(lambda: len(acked) >= 300, what="300 messages acknowledged")
    backup_started = time.monotonic()
    with lock:
        before = set(acked)
    dest = tmp_path / "backups"
    dest.mkdir()
    r = lucy_cmd(["backup", str(dest), "--json"], lucy.data_dir)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for t in threads:
        t.join()
    assert len(acked) == 1000
    assert out["path"].startswith(str(dest)) and os.path.basename(out["path"]).startswith("lucy-")
    assert glob.glob(str(dest / ".lucy-backup-*")) == []  # no temp file left
    in_backup = wamids(out["path"])
    missing = before - in_backup
    assert not missing, "acknowledged before the backup started, missing in it: %r" % sorted(missing)[:5]
    assert lucy.get("/health").status_code == 200  # serving went on
    # restore into a fresh data dir; lucy serves from it
    fresh = str(tmp_path / "fresh")
    os.makedirs(fresh)
    r = lucy_cmd(["restore", out["path"]], fresh)
    assert r.returncode == 0, r.stderr
    restored = start_lucy(data_dir=fresh)
    assert restored.get("/health").status_code == 200
    hits = restored.get("/search", params={"q": "backup", "limit": 5}).json()
    assert hits["count"] > 0
    assert len(before) <= len(wamids(os.path.join(fresh, "lucy.db")))
    assert backup_started > 0


def test_restore_refuses_while_serve_holds_the_data_dir(start_lucy, tmp_path):
    lucy = start_lucy()
    dest = str(tmp_path / "b.db")
    assert lucy_cmd(["backup", dest], lucy.data_dir).returncode == 0
    r = lucy_cmd(["restore", dest], lucy.data_dir)
    assert r.returncode == 1
    line = r.stderr.decode().strip().splitlines()[-1]
    assert "pid %d" % lucy.proc.pid in line and "stop it first" in line, line
    assert lucy.get("/health/live").status_code == 200


def test_restore_accepts_an_older_store_and_keeps_the_replaced_one(start_lucy, tmp_path):
    lucy = start_lucy(env={"WHATSAPP_APP_SECRET": SECRET})
    body, headers = webhook(1)
    assert lucy.post("/webhook/whatsapp", data=body, headers=headers).status_code == 200
    old = str(tmp_path / "old.db")
    assert lucy_cmd(["backup", old], lucy.data_dir).returncode == 0
    for i in range(2, 40):
        body, headers = webhook(i)
        assert lucy.post("/webhook/whatsapp", data=body, headers=headers).status_code == 200
    time.sleep(2.5)  # the commit-count marker has caught up: the older copy is "behind" it
    data = lucy.data_dir
    assert lucy.stop() == 0
    r = lucy_cmd(["restore", old, "--json"], data)
    assert r.returncode == 0, r.stderr
    aside = json.loads(r.stdout)["moved_aside"]
    assert len(wamids(aside)) == 39  # the replaced database is kept, not deleted
    again = start_lucy(data_dir=data)  # the marker follows the restore: no refusal
    assert again.get("/health").status_code == 200
    assert wamids(os.path.join(data, "lucy.db")) == {"wamid.BK000001"}


def test_restore_refuses_a_file_that_is_not_a_sound_store(tmp_path):
    data = str(tmp_path / "data")
    os.makedirs(data)
    junk = tmp_path / "junk.db"
    junk.write_bytes(os.urandom(8192))
    r = lucy_cmd(["restore", str(junk)], data)
    assert r.returncode == 1 and b"not a sound lucy store" in r.stderr
    assert not os.path.exists(os.path.join(data, "lucy.db"))


@needs_root
def test_backup_onto_a_filling_tmpfs_fails_clearly_and_leaves_nothing(start_lucy, tmpfs, tmp_path):
    lucy = start_lucy(env={"WHATSAPP_APP_SECRET": SECRET})
    for i in range(200):
        body, headers = webhook(i)
        assert lucy.post("/webhook/whatsapp", data=body, headers=headers).status_code == 200
    data = lucy.data_dir
    con = sqlite3.connect(os.path.join(data, "lucy.db"), timeout=30)
    con.execute("CREATE TABLE IF NOT EXISTS pad_for_test (x BLOB)")
    con.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 12) "
                "INSERT INTO pad_for_test SELECT randomblob(1000000) FROM c")
    con.commit()
    con.close()
    mnt = tmpfs("8m")
    r = lucy_cmd(["backup", mnt], data)  # about 12 MB into 8 MB: refused before writing
    assert r.returncode == 1
    assert b"not enough room" in r.stderr, r.stderr
    # below the warn level of the destination: skipped, with the levels named
    r = lucy_cmd(["backup", str(tmp_path)], data, env={"LUCY_DISK_WARN_PCT": "100"})
    assert r.returncode == 1 and b"below the warn level" in r.stderr, r.stderr
    # the space check passes, then the disk fills while the copy is written
    mnt2 = tmpfs("16m")
    hog = os.path.join(mnt2, "hog")
    r = [None]

    def backup():
        r[0] = lucy_cmd(["backup", mnt2], data)
    t = threading.Thread(target=backup)
    t.start()
    with open(hog, "wb") as f:  # race the copy for the space
        try:
            for _ in range(16):
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    t.join()
    leftovers = [p for p in os.listdir(mnt2) if p != "hog"]
    if r[0].returncode != 0:
        assert b"backup failed" in r[0].stderr
        assert leftovers == [], leftovers  # no partial file, no temp file
    else:  # the copy won the race: it must then be complete and sound
        assert len(leftovers) == 1 and wamids(os.path.join(mnt2, leftovers[0]))
    assert lucy.get("/health/live").status_code == 200


def test_kill9_during_a_backup_leaves_the_previous_good_backup(start_lucy, tmp_path):
    lucy = start_lucy(env={"WHATSAPP_APP_SECRET": SECRET})
    for i in range(100):
        body, headers = webhook(i)
        assert lucy.post("/webhook/whatsapp", data=body, headers=headers).status_code == 200
    data = lucy.data_dir
    assert lucy.stop() == 0
    con = sqlite3.connect(os.path.join(data, "lucy.db"))
    con.execute("CREATE TABLE pad_for_test (x BLOB)")
    con.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60) "
                "INSERT INTO pad_for_test SELECT randomblob(1000000) FROM c")
    con.commit()
    con.close()
    dest = str(tmp_path / "backup.db")
    assert lucy_cmd(["backup", dest], data).returncode == 0
    good = hashlib.sha256(open(dest, "rb").read()).hexdigest()
    e = {k: v for k, v in os.environ.items() if not k.startswith("LUCY_")}
    e.update(SAN_ENV)
    e.update({"LUCY_DATA_DIR": data, "LUCY_DISK_WARN_MB": "0", "LUCY_DISK_WARN_PCT": "0",
              "LUCY_DISK_CRITICAL_MB": "0", "LUCY_DISK_CRITICAL_PCT": "0"})
    killed = 0
    for _ in range(8):
        p = subprocess.Popen([LUCY_BIN, "backup", dest], env=e, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(random.uniform(0.01, 0.15))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait()
        # the file under the final name is always a whole, sound backup
        assert len(wamids(dest)) == 100
    assert killed > 0
    final = hashlib.sha256(open(dest, "rb").read()).hexdigest()
    assert final == good or len(wamids(dest)) == 100


# ---- scheduled backups ----------------------------------------------------------

def _backups(d):
    return sorted(p for p in os.listdir(d) if p.startswith("lucy-") and p.endswith(".db"))


def test_scheduled_backup_at_start_keeps_the_newest_and_doctor_names_it(start_lucy, tmp_path):
    dest = tmp_path / "scheduled"
    dest.mkdir()
    old = ["lucy-2020010%dT000000Z.db" % i for i in range(1, 6)]
    for name in old:  # five old backups, older than the interval
        (dest / name).write_bytes(b"old")
        os.utime(dest / name, (time.time() - 30 * 86400, time.time() - 30 * 86400))
    lucy = start_lucy(env={"LUCY_BACKUP_DIR": str(dest), "LUCY_BACKUP_INTERVAL_H": "24",
                           "LUCY_BACKUP_KEEP": "3"})
    lucy.wait_for(lambda: len(_backups(dest)) == 3 and _backups(dest)[-1] not in old,
                  what="a new backup and the two newest old ones kept")
    assert _backups(dest)[:2] == old[3:]  # the oldest three were removed
    assert len(wamids(str(dest / _backups(dest)[-1]))) == 0  # a sound, checked copy
    lucy.wait_for(lambda: lucy.get("/health").json()["checks"]["backup:age"][0]["status"] == "pass",
                  what="backup:age passes once the new backup is there")
    r = lucy_cmd(["doctor", "--json"], lucy.data_dir, env={"LUCY_BACKUP_DIR": str(dest)})
    backup = [c for c in json.loads(r.stdout)["checks"] if c["name"] == "backup"][0]
    assert backup["details"]["last_good"].endswith(_backups(dest)[-1]), backup


@needs_root
def test_scheduled_backup_without_room_warns_and_retries_by_itself(start_lucy, tmpfs):
    mnt = tmpfs("4m")
    hog = os.path.join(mnt, "hog")
    with open(hog, "wb") as f:
        f.write(b"\0" * (3 * 1024 * 1024 + 900 * 1024))
    lucy = start_lucy(env={"LUCY_BACKUP_DIR": mnt})
    check = lucy.wait_for(lambda: (lambda c: c if c and c[0]["status"] == "warn" else None)(
        lucy.get("/health").json()["checks"].get("backup:age")), what="backup:age warns")[0]
    assert "not enough room" in check["output"], check
    assert lucy.get("/health").status_code == 200  # a warning, not a failure
    assert _backups(mnt) == [] and [p for p in os.listdir(mnt) if p != "hog"] == []
    os.unlink(hog)
    lucy.wait_for(lambda: len(_backups(mnt)) == 1, timeout=30, what="the retried backup")
    lucy.wait_for(lambda: lucy.get("/health").json()["checks"]["backup:age"][0]["status"] == "pass",
                  what="backup:age passes")
