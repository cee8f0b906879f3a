"""`lucy doctor [--json] [--fix]` (issue 7, DESIGN §10) against real parts.

Redis is a real `redis-server` put into MISCONF the way the incident did it:
its `dir` is a 2 MiB tmpfs that is filled until a BGSAVE fails. Qdrant is
the spec-checked double (tests/qdrant/double.py), including its `wal_full`
fault for "WAL buffer size exceeds available disk space". The daemon is the
real `lucy serve` (conftest's start_lucy); doctor runs as a separate
process on the same data dir, as an operator would run it.

Every remedy doctor prints must be a line of the runbook: the tests check
that each remedy they see appears verbatim in docs/operations.md (the unit
test tests/unit/doctor_test.c checks the whole table).
"""
import json
import os
import pty
import sqlite3
import subprocess
import time

import pytest  # noqa: F401  (fixtures)

from conftest import LUCY_BIN, ROOT, SAN_ENV, fill
from qdrant_fixture import qdrant_double  # noqa: F401  (pytest fixture)
from redis_fixture import redis_server  # noqa: F401  (pytest fixture)

CHECKS = ["daemon", "disk", "data_dir", "reserve", "temp_copies", "store", "backup", "inbox", "outbox",
          "jobs", "kv_pending", "redis", "qdrant", "scanner", "locked_files", "media"]
RUNBOOK = open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8").read()
AUDIO = os.path.join(ROOT, "tests", "fixtures", "audio")

# The daemon's environment in conftest.Lucy.start: doctor must see the same
# configuration, so it gets the same variables.
SAME_AS_DAEMON = {
    "LUCY_DISK_WARN_MB": "0", "LUCY_DISK_WARN_PCT": "0",
    "LUCY_DISK_CRITICAL_MB": "0", "LUCY_DISK_CRITICAL_PCT": "0",
    "LUCY_DISK_RESERVE_MB": "1",
}
MISCONF_REMEDY_WORDS = ["free space in Redis's dir", "BGSAVE", "lucy doctor --fix"]


def doctor_env(data_dir, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LUCY_", "WHATSAPP_", "REDIS_", "QDRANT_", "NO_COLOR"))}
    env.update(SAN_ENV)
    env.update(SAME_AS_DAEMON)
    env["LUCY_DATA_DIR"] = str(data_dir)
    env.update(extra or {})
    return env


def run_doctor(data_dir, *args, env=None, timeout=90):
    p = subprocess.run([LUCY_BIN, "doctor"] + list(args), env=doctor_env(data_dir, env),
                       capture_output=True, timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        assert bad not in err, err[-6000:]
    return p


def doctor_json(data_dir, *args, env=None):
    """(exit code, document) of `lucy doctor --json ARGS`."""
    p = run_doctor(data_dir, "--json", *args, env=env)
    assert p.returncode in (0, 1), p.stderr.decode()[-3000:]
    return p.returncode, json.loads(p.stdout)


def check(doc, name):
    return [c for c in doc["checks"] if c["name"] == name][0]


def fix(doc, name):
    found = [f for f in doc["fixes"] if f["name"] == name]
    return found[0] if found else None


def not_ok(doc):
    return {c["name"]: (c["status"], c["summary"]) for c in doc["checks"] if c["status"] != "ok"}


def assert_in_runbook(doc):
    for c in doc["checks"]:
        if c["remedy"] is not None:
            assert c["remedy"] in RUNBOOK, "remedy of %s not in docs/operations.md: %r" % (
                c["name"], c["remedy"])


def assert_shape(doc):
    """The documented shape (docs/operations.md, "lucy doctor --json")."""
    assert set(doc) == {"status", "version", "data_dir", "checks", "fixes"}
    assert doc["status"] in ("ok", "attention")
    assert [c["name"] for c in doc["checks"]] == CHECKS
    for c in doc["checks"]:
        assert set(c) == {"name", "status", "summary", "details", "remedy"}, c
        assert c["status"] in ("ok", "warn", "critical")
        assert isinstance(c["summary"], str) and c["summary"]
        assert isinstance(c["details"], dict)
        assert (c["remedy"] is None) == (c["status"] == "ok"), c
    for f in doc["fixes"]:
        assert set(f) == {"name", "applied", "result"} and isinstance(f["applied"], bool)
    assert doc["status"] == ("attention" if not_ok(doc) else "ok")
    assert_in_runbook(doc)


def prepared(start_lucy, env=None):
    """A data dir a daemon has run on (store, reserve), daemon stopped."""
    lucy = start_lucy(env=env)
    assert lucy.stop() == 0
    return lucy.data_dir


# ---- healthy set-ups: exit 0 -------------------------------------------------

def test_healthy_embedded_exit_0_and_stable_json(start_lucy):
    lucy = start_lucy()
    rc, doc = doctor_json(lucy.data_dir)
    assert rc == 0, not_ok(doc)
    assert_shape(doc)
    assert doc["status"] == "ok" and doc["fixes"] == []
    assert doc["data_dir"] == lucy.data_dir
    daemon = check(doc, "daemon")["details"]
    assert daemon["running"] is True and daemon["pid"] == lucy.proc.pid
    paths = check(doc, "disk")["details"]["paths"]
    assert [p["role"] for p in paths] == ["data", "tmp"]
    assert all(p["level"] == "ok" and p["free_bytes"] > 0 and p["total_bytes"] > 0 for p in paths)
    dd = check(doc, "data_dir")["details"]
    assert set(dd) >= {"database", "wal", "shm", "reserve", "temp_copies", "other", "total"}
    assert dd["reserve"]["bytes"] == 1024 * 1024 and dd["reserve"]["human"] == "1.0 MiB"
    assert dd["database"]["bytes"] > 0 and dd["total"]["bytes"] >= dd["database"]["bytes"]
    assert check(doc, "reserve")["details"]["present"] is True
    assert check(doc, "store")["details"]["schema_version"] > 0
    assert check(doc, "jobs")["details"]["by_status"]["blocked"] == 0
    assert check(doc, "redis")["details"] == {"configured": False}
    assert check(doc, "qdrant")["details"] == {"configured": False}

    # text: one line per check, no colour when stdout is not a terminal
    p = run_doctor(lucy.data_dir)
    text = p.stdout.decode()
    assert p.returncode == 0 and "\033[" not in text
    for name in CHECKS:
        assert name in text
    assert "all 16 checks ok" in text


def test_colours_only_on_a_terminal(start_lucy):
    data = prepared(start_lucy)

    def on_pty(*args, env=None):
        pid, fd = pty.fork()
        if pid == 0:  # the child: never return into pytest
            try:
                e = doctor_env(data, env)
                e["TERM"] = "xterm"
                os.execve(LUCY_BIN, [LUCY_BIN, "doctor"] + list(args), e)
            finally:
                os._exit(127)
        out = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        os.close(fd)
        return out.decode("utf-8", "replace")

    assert "\033[32m" in on_pty()  # green "ok"
    assert "\033[" not in on_pty(env={"NO_COLOR": "1"})
    doc = json.loads(on_pty("--json").replace("\r\n", "\n"))  # JSON: never colours
    assert_shape(doc)


def test_healthy_with_redis_and_qdrant(start_lucy, redis_server, qdrant_double):
    r = redis_server()
    q = qdrant_double()
    env = {"REDIS_URL": r.url, "QDRANT_URL": q.url}
    lucy = start_lucy(env=env)
    # lucy serve creates the collection and its payload indexes in the background
    lucy.wait_for(lambda: lucy.get("/rag/stats").json()["payload_indexes"]["pending"] == [] or None,
                  what="collection and indexes created")
    rc, doc = doctor_json(lucy.data_dir, env=env)
    assert rc == 0, not_ok(doc)
    assert_shape(doc)
    red = check(doc, "redis")["details"]
    assert red["configured"] and red["reachable"] and red["misconf"] is False
    assert red["rdb_last_bgsave_status"] == "ok" and red["stop_writes_on_bgsave_error"] == "yes"
    assert red["lifted_by_doctor"] is None
    assert red["used_memory"]["bytes"] > 0 and red["maxmemory"]["bytes"] == 0  # no limit set
    assert red["maxmemory_policy"] == "noeviction"
    qd = check(doc, "qdrant")["details"]
    assert qd["reachable"] is True and qd["collection_status"] == "green"
    assert isinstance(qd["points"], int) and qd["payload_indexes_pending"] == []


# ---- disk levels from the configured thresholds --------------------------------

def test_disk_warn_and_critical_via_thresholds(start_lucy):
    data = prepared(start_lucy)
    st = os.statvfs(data)
    free_pct = 100.0 * st.f_bavail / st.f_blocks
    # warn above today's free percentage, critical well below it
    warn = {"LUCY_DISK_WARN_PCT": str(min(100, int(free_pct) + 1)), "LUCY_DISK_CRITICAL_PCT": "0"}
    rc, doc = doctor_json(data, env=warn)
    assert rc == 1
    assert_shape(doc)
    disk = check(doc, "disk")
    assert disk["status"] == "warn" and "Free space on this file system" in disk["remedy"]
    assert {p["level"] for p in disk["details"]["paths"]} == {"warn"}
    assert disk["details"]["thresholds"]["warn_pct"] == int(warn["LUCY_DISK_WARN_PCT"])

    crit = {"LUCY_DISK_WARN_PCT": "100", "LUCY_DISK_CRITICAL_PCT": "100"}
    rc, doc = doctor_json(data, env=crit)
    assert rc == 1
    disk = check(doc, "disk")
    assert disk["status"] == "critical" and "docker volume prune" in disk["remedy"]
    assert "paused transcriptions" in disk["remedy"]
    # at critical the reserve is not recreated: doctor says why, offers no fix
    os.unlink(os.path.join(data, "reserve.bin"))
    rc, doc = doctor_json(data, "--fix", env=crit)
    assert check(doc, "reserve")["status"] == "warn"
    assert "released on purpose" in check(doc, "reserve")["remedy"]
    assert fix(doc, "reserve") is None
    assert_in_runbook(doc)

    p = run_doctor(data, env=crit)
    assert p.returncode == 1
    assert ("what to do: " + check(doc, "disk")["remedy"]) in p.stdout.decode()


def test_extra_paths_are_watched(start_lucy, tmp_path):
    data = prepared(start_lucy)
    rc, doc = doctor_json(data, env={"LUCY_DISK_PATHS": "%s:%s" % (tmp_path, tmp_path / "gone")})
    paths = check(doc, "disk")["details"]["paths"]
    assert [p["role"] for p in paths] == ["data", "tmp", "extra", "extra"]
    assert paths[2]["level"] == "ok" and paths[3]["level"] == "unmeasured"
    assert rc == 1 and "statvfs failed" in check(doc, "disk")["remedy"]


# ---- reserve and temp copies: --fix --------------------------------------------

def test_reserve_recreated_by_fix(start_lucy):
    data = prepared(start_lucy)
    os.unlink(os.path.join(data, "reserve.bin"))
    rc, doc = doctor_json(data)
    assert rc == 1 and check(doc, "reserve")["status"] == "warn"
    assert "lucy doctor --fix" in check(doc, "reserve")["remedy"]
    assert not os.path.exists(os.path.join(data, "reserve.bin"))  # checks change nothing

    rc, doc = doctor_json(data, "--fix")
    assert rc == 0, not_ok(doc)
    assert_shape(doc)
    f = fix(doc, "reserve")
    assert f["applied"] is True and "reserve.bin" in f["result"]
    st = os.stat(os.path.join(data, "reserve.bin"))
    assert st.st_size == 1024 * 1024 and st.st_blocks * 512 >= 1024 * 1024


def test_stale_temp_copies_removed_only_without_daemon(start_lucy):
    lucy = start_lucy()
    tmp = os.path.join(lucy.data_dir, "tmp")
    copy = os.path.join(tmp, "copy-abc123")
    with open(copy, "wb") as f:
        f.write(b"\1" * 200000)

    # a daemon runs: the copy may be in use; --fix says so and leaves it
    rc, doc = doctor_json(lucy.data_dir, "--fix")
    tc = check(doc, "temp_copies")
    assert tc["status"] == "ok" and tc["details"]["files"] == 1 and tc["details"]["daemon_running"]
    f = fix(doc, "temp_copies")
    assert f["applied"] is False and "skipped" in f["result"]
    assert "pid %d" % lucy.proc.pid in f["result"]
    assert os.path.exists(copy)
    assert rc == 0, not_ok(doc)

    # no daemon: the copy is stale; plain doctor reports, --fix removes
    assert lucy.stop() == 0
    rc, doc = doctor_json(lucy.data_dir)
    tc = check(doc, "temp_copies")
    assert rc == 1 and tc["status"] == "warn" and tc["details"]["size"]["bytes"] >= 200000
    assert "lucy doctor --fix" in tc["remedy"]
    assert os.path.exists(copy)
    rc, doc = doctor_json(lucy.data_dir, "--fix")
    f = fix(doc, "temp_copies")
    assert f["applied"] is True and "removed 1 stale temp copies" in f["result"]
    assert os.listdir(tmp) == []
    assert rc == 0, not_ok(doc)
    assert_shape(doc)


# ---- store contents: backlogs, scanner, locked files ---------------------------

def test_old_inbox_backlog_and_blocked_jobs(start_lucy):
    data = prepared(start_lucy)
    # Rows as the webhook and the scanner write them, aged 10 minutes, while
    # no daemon runs to process them.
    old_ms = int(time.time() * 1000) - 600000
    con = sqlite3.connect(os.path.join(data, "lucy.db"))
    con.execute("INSERT INTO wa_inbox_bodies (id, sha256, received_at_ms, body) VALUES (1, x'00', ?, x'7b7d')",
                (old_ms,))
    con.execute("INSERT INTO wa_messages (wamid, body_id, sender, type, known_type, timestamp_s, raw,"
                " received_at_ms, last_error) VALUES ('wamid.X', 1, '155', 'text', 1, 1, '{}', ?,"
                " 'redis: MISCONF')", (old_ms,))
    con.execute("INSERT INTO jobs (recording_id, status, created_at_s, updated_at_s)"
                " VALUES ('ab', 'blocked', 1, 1)")
    con.commit()
    con.close()
    rc, doc = doctor_json(data)
    assert rc == 1
    inbox = check(doc, "inbox")
    assert inbox["status"] == "warn" and inbox["details"]["messages"]["pending"] == 1
    assert inbox["details"]["messages"]["oldest_age_s"] >= 590
    assert inbox["details"]["last_error"] == "redis: MISCONF"
    assert "safe on disk" in inbox["remedy"]
    jobs = check(doc, "jobs")
    assert jobs["status"] == "warn" and jobs["details"]["by_status"]["blocked"] == 1
    assert "wait for disk space" in jobs["remedy"]
    assert_shape(doc)


def test_scan_summary_and_locked_files(start_lucy, tmp_path):
    from test_scan import SHIM, write_control  # the LD_PRELOAD lock shim and its control file
    data = prepared(start_lucy)
    folder = tmp_path / "synced"
    folder.mkdir()
    for name in ("goforward.m4a", "cards-001.ogg"):
        with open(os.path.join(AUDIO, name), "rb") as src, open(folder / name, "wb") as dst:
            dst.write(src.read())
        os.utime(folder / name, (time.time() - 3600, time.time() - 3600))
    ctl = tmp_path / "locks"
    write_control(ctl, ["open EDEADLK %s/goforward.m4a" % folder])
    env = doctor_env(data, {"LD_PRELOAD": SHIM, "LOCKSHIM_FILE": str(ctl), "LUCY_SCAN_SETTLE_S": "0"})
    p = subprocess.run([LUCY_BIN, "scan", str(folder), "--json"], env=env, capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-3000:]

    rc, doc = doctor_json(data, env={"LUCY_RECORDINGS_DIRS": str(folder)})
    scanner = check(doc, "scanner")
    last = scanner["details"]["last_scan"]
    assert last["files_seen"] == 2 and last["locked"] == 1 and last["new"] == 1
    assert last["errors_by_errno"] == {"EDEADLK": 1} and last["failed"] is False
    assert last["finished_at_s"] <= time.time()
    assert scanner["status"] == "ok" and "1 locked" in scanner["summary"]
    locked = check(doc, "locked_files")
    assert locked["status"] == "warn" and locked["details"]["locked"] == 1
    assert locked["details"]["examples"][0]["path"].endswith("goforward.m4a")
    assert locked["details"]["examples"][0]["errno"] == "EDEADLK"
    assert "sync client" in locked["remedy"]
    assert rc == 1
    assert_shape(doc)


def test_usage_error_exit_2(tmp_path):
    p = run_doctor(tmp_path / "data", "--bogus")
    assert p.returncode == 2 and b"--bogus" in p.stderr


# ---- Redis MISCONF, for real ----------------------------------------------------

def break_persistence(r, d):
    """Fills Redis's dir (a tmpfs), writes data that cannot be saved, waits
    for a failed BGSAVE: Redis then refuses writes with MISCONF. Returns
    the filler file (delete it to free the space)."""
    filler = fill(d, leave_bytes=0)
    r.cli("EVAL", "for i=1,64 do redis.call('SET', 'filler:'..i, string.rep(string.char("
          "math.random(0,255)), 4096) .. math.random()) end return 1", "0")
    deadline = time.time() + 15
    while time.time() < deadline:
        info = r.info()
        if info.get("rdb_bgsave_in_progress") == "0":
            if info.get("rdb_last_bgsave_status") == "err":
                break
            r.cli("BGSAVE")
        time.sleep(0.2)
    assert r.cli("SET", "probe", "1").startswith("MISCONF"), r.info()
    return filler


def stop_writes(r):
    return r.cli("CONFIG", "GET", "stop-writes-on-bgsave-error").split()[-1]


def test_redis_misconf_reported_fixed_and_restored(start_lucy, redis_server, tmpfs):
    d = tmpfs("2m", name="redis-dir")
    r = redis_server(dir=d, save="1 1")
    env = {"REDIS_URL": r.url}
    lucy = start_lucy(env=env)  # auto-heal off: only doctor touches Redis's config
    filler = break_persistence(r, d)

    # reported, with the runbook's remedy; nothing changed
    rc, doc = doctor_json(lucy.data_dir, env=env)
    assert rc == 1
    assert_shape(doc)
    red = check(doc, "redis")
    assert red["status"] == "critical", red
    det = red["details"]
    assert det["reachable"] is True and det["misconf"] is True
    assert det["misconf_message"].startswith("MISCONF")
    assert det["rdb_last_bgsave_status"] == "err" and det["stop_writes_on_bgsave_error"] == "yes"
    assert "MISCONF" in red["summary"]
    for words in MISCONF_REMEDY_WORDS:
        assert words in red["remedy"]
    p = run_doctor(lucy.data_dir, env=env)
    assert p.returncode == 1 and ("what to do: " + red["remedy"]) in p.stdout.decode()
    assert stop_writes(r) == "yes" and r.cli("SET", "probe", "1").startswith("MISCONF")

    # --fix while the disk is still full: writes come back, the setting stays no
    rc, doc = doctor_json(lucy.data_dir, "--fix", env=env)
    f = fix(doc, "redis")
    assert f["applied"] is True and "accepts writes again" in f["result"], f
    assert "run `lucy doctor --fix` again" in f["result"]
    assert stop_writes(r) == "no"
    assert r.cli("SET", "probe", "2") == "OK"
    red = check(doc, "redis")
    assert red["status"] == "warn" and red["details"]["misconf"] is False
    assert red["details"]["lifted_by_doctor"] and "restore yes" in red["remedy"]
    assert rc == 1
    assert_shape(doc)

    # a plain doctor keeps saying so and changes nothing
    rc, doc = doctor_json(lucy.data_dir, env=env)
    assert rc == 1 and check(doc, "redis")["status"] == "warn" and stop_writes(r) == "no"

    # space is back: --fix saves, then restores yes
    os.unlink(filler)
    rc, doc = doctor_json(lucy.data_dir, "--fix", env=env)
    f = fix(doc, "redis")
    assert f["applied"] is True and "restored to yes" in f["result"], f
    assert stop_writes(r) == "yes"
    assert r.info()["rdb_last_bgsave_status"] == "ok"
    assert r.cli("EXISTS", "lucy:doctor:stop_writes_lifted") == "0"
    red = check(doc, "redis")
    assert red["status"] == "ok" and red["details"]["lifted_by_doctor"] is None
    assert rc == 0, not_ok(doc)
    assert_shape(doc)


def test_redis_fix_refused_when_config_is_forbidden(start_lucy, redis_server, tmpfs):
    d = tmpfs("2m", name="redis-dir")
    r = redis_server(dir=d, save="1 1", extra=["--rename-command", "CONFIG", ""])
    env = {"REDIS_URL": r.url}
    data = prepared(start_lucy)
    break_persistence(r, d)
    rc, doc = doctor_json(data, "--fix", env=env)
    f = fix(doc, "redis")
    assert f["applied"] is False and "refused" in f["result"] and "by hand" in f["result"]
    assert check(doc, "redis")["status"] == "critical" and rc == 1
    assert r.cli("SET", "probe", "x").startswith("MISCONF")  # nothing changed


def test_redis_memory_near_maxmemory(start_lucy, redis_server):
    r = redis_server(extra=["--maxmemory-policy", "noeviction"])
    env = {"REDIS_URL": r.url}
    data = prepared(start_lucy, env=env)
    used = int(r.info("memory")["used_memory"])
    r.cli("CONFIG", "SET", "maxmemory", str(int(used * 1.05)))  # 95 % full, nothing to evict
    rc, doc = doctor_json(data, env=env)
    red = check(doc, "redis")
    assert rc == 1 and red["status"] == "warn", red
    assert red["details"]["maxmemory"]["bytes"] == int(used * 1.05)
    assert "OOM" in red["remedy"] and "allkeys-lru" in red["remedy"]
    assert_shape(doc)
    r.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")  # can always evict: fine
    rc, doc = doctor_json(data, env=env)
    assert check(doc, "redis")["status"] == "ok" and rc == 0, not_ok(doc)


def test_redis_down(start_lucy, redis_server):
    r = redis_server()
    env = {"REDIS_URL": r.url}
    data = prepared(start_lucy, env=env)
    r.kill()
    rc, doc = doctor_json(data, env=env)
    red = check(doc, "redis")
    assert rc == 1 and red["status"] == "critical" and red["details"]["reachable"] is False
    assert red["details"]["error"]["kind"] == "connection"
    assert "Start Redis" in red["remedy"]
    assert_shape(doc)


# ---- Qdrant ---------------------------------------------------------------------

def test_qdrant_wal_full_indexes_pending_then_down(start_lucy, qdrant_double):
    q = qdrant_double()
    q.fault(kind="wal_full", ops=["create_index"])  # the incident: no payload indexes
    env = {"QDRANT_URL": q.url}
    lucy = start_lucy(env=env)
    lucy.wait_for(lambda: lucy.get("/rag/stats").json().get("qdrant_status") or None,
                  what="collection created")
    rc, doc = doctor_json(lucy.data_dir, env=env)
    qd = check(doc, "qdrant")
    assert rc == 1 and qd["status"] == "warn", qd
    assert sorted(qd["details"]["payload_indexes_pending"]) == sorted(
        ["source", "contact", "recording_id", "time", "text"])
    assert "WAL buffer size exceeds available disk space" in qd["remedy"]
    assert_shape(doc)

    q.stop()
    rc, doc = doctor_json(lucy.data_dir, env=env)
    qd = check(doc, "qdrant")
    assert rc == 1 and qd["status"] == "critical" and qd["details"]["reachable"] is False
    assert "Start Qdrant" in qd["remedy"]
    assert_shape(doc)
