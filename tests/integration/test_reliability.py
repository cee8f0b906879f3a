"""Faults Part I's suite did not cover (issue "Reliability"): each test here
failed on the release before its fix, with the fault produced for real."""
import json
import os
import subprocess

from conftest import LUCY_BIN, SAN_ENV


def run_lucy(args, env=None, timeout=30):
    """Runs one lucy command to completion; returns CompletedProcess."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "WHATSAPP_", "REDIS_", "QDRANT_"))}
    e.update(SAN_ENV)
    e.update(env or {})
    return subprocess.run([LUCY_BIN] + args, env=e, capture_output=True, timeout=timeout)


def test_second_daemon_on_one_data_dir_exits_1_naming_the_first(start_lucy):
    first = start_lucy()
    second = run_lucy(["serve", "--listen", "127.0.0.1:0", "--data", first.data_dir],
                      env={"LUCY_DISK_RESERVE_MB": "0"})
    assert second.returncode == 1, second
    err_lines = [l for l in second.stderr.decode().splitlines() if not l.startswith("{")]
    assert len(err_lines) == 1, second.stderr
    assert "pid %d" % first.proc.pid in err_lines[0]
    assert "--data" in err_lines[0]  # says what to do
    # the first is untouched: still serving, still the pid in the lock file
    assert first.get("/health/live").status_code == 200
    with open(os.path.join(first.data_dir, "lucy.pid")) as f:
        assert int(f.read()) == first.proc.pid
    doctor = run_lucy(["doctor", "--json", "--data", first.data_dir])
    report = json.loads(doctor.stdout)
    assert str(first.proc.pid) in json.dumps(report), report


def test_daemon_starts_after_the_first_was_killed(start_lucy):
    """A stale pid file (kill -9 leaves it) does not block the next start."""
    first = start_lucy()
    data = first.data_dir
    first.kill9()
    again = start_lucy(data_dir=data)
    assert again.get("/health/live").status_code == 200
