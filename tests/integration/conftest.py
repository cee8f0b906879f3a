"""Shared fixtures for the integration tests: start the real `lucy` binary on
a random loopback port, talk HTTP to it, mount a small tmpfs for disk-full
tests.

LUCY_BIN names the binary under test (scripts/run-tests sets it for the plain
and the sanitizer build). Every test gets a fresh data dir.
"""
import json
import os
import signal
import subprocess
import time
import uuid

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LUCY_BIN = os.environ.get("LUCY_BIN", os.path.join(ROOT, "build", "lucy"))
BUILD_DIR = os.environ.get("LUCY_BUILD_DIR", os.path.dirname(LUCY_BIN))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
IS_ROOT = os.geteuid() == 0

# The sanitizer build must not abort on an LD_PRELOAD shim loaded before it,
# and leak reports at exit are real failures.
SAN_ENV = {
    "ASAN_OPTIONS": "verify_asan_link_order=0:detect_leaks=1:abort_on_error=1",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

def media_processes(pid):
    """The media processes of `lucy serve` pid (`lucy media-worker`,
    src/media/remote.c): its children, started by any of its threads."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root to mount a tmpfs (CI runs as root)")


class Lucy:
    """One running `lucy serve` process."""

    def __init__(self, data_dir, env=None, args=None, log_path=None, binary=None):
        self.binary = binary or LUCY_BIN
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.args = list(args or [])
        self.log_path = log_path or os.path.join(data_dir + ".log")
        self.proc = None
        self.port = None

    def start(self, timeout=30):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "WHATSAPP_", "REDIS_", "QDRANT_"))}
        env.update(SAN_ENV)
        env.update({
            "LUCY_LISTEN": "127.0.0.1:0",
            "LUCY_DATA_DIR": self.data_dir,
            "LUCY_DISK_WARN_MB": "0",
            "LUCY_DISK_WARN_PCT": "0",
            "LUCY_DISK_CRITICAL_MB": "0",
            "LUCY_DISK_CRITICAL_PCT": "0",
            "LUCY_DISK_RESERVE_MB": "1",
            "LUCY_DISK_INTERVAL_MS": "200",
        })
        env.update(self.env)
        self._log = open(self.log_path, "ab")
        self.log_offset = self._log.tell()
        self.proc = subprocess.Popen([self.binary, "serve"] + self.args, env=env,
                                     stdout=self._log, stderr=self._log)
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in self.log_lines():
                if line.get("msg") == "listening":
                    self.port = line["port"]
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError("lucy exited with %s:\n%s" % (self.proc.returncode, self.log_text()))
            time.sleep(0.05)
        raise RuntimeError("lucy did not start:\n" + self.log_text())

    def log_text(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode("utf-8", "replace")

    def log_lines(self):
        out = []
        for raw in self.log_text().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"raw": raw})
        return out

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def get(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.get(self.url + path, **kw)

    def post(self, path, **kw):
        kw.setdefault("timeout", 30)
        return requests.post(self.url + path, **kw)

    def put(self, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.put(self.url + path, **kw)

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 10)
        return requests.request(method, self.url + path, **kw)

    def stop(self, timeout=30):
        """SIGTERM and wait; returns the exit code."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("lucy did not stop within %ss" % timeout)
        self._close_log()
        return self.proc.returncode if self.proc else None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._close_log()

    def _close_log(self):
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def wait_for(self, predicate, timeout=20, interval=0.1, what="condition"):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s (last: %r)\nlog:\n%s" % (what, last, self.log_text()[-4000:]))


@pytest.fixture
def start_lucy(tmp_path):
    """Factory: start_lucy(env={...}, args=[...], data_dir=None, binary=None) -> Lucy.
    Every instance is stopped at the end of the test; a sanitizer report or
    a non-zero exit on SIGTERM fails the test."""
    started = []

    def start(env=None, args=None, data_dir=None, binary=None):
        d = data_dir or str(tmp_path / ("data-" + uuid.uuid4().hex[:8]))
        lucy = Lucy(d, env=env, args=args, log_path=str(tmp_path / ("lucy-%d.log" % len(started))),
                    binary=binary)
        started.append(lucy)
        return lucy.start()

    yield start
    for lucy in started:
        if lucy.proc and lucy.proc.poll() is None:
            rc = lucy.stop()
            assert rc == 0, "lucy exited %s on SIGTERM:\n%s" % (rc, lucy.log_text()[-4000:])
        text = lucy.log_text() if os.path.exists(lucy.log_path) else ""
        assert "ERROR: AddressSanitizer" not in text, text[-6000:]
        assert "runtime error:" not in text, text[-6000:]
        assert "ERROR: LeakSanitizer" not in text, text[-6000:]


@pytest.fixture
def tmpfs(tmp_path):
    """Factory: tmpfs(size="16m") -> path of a freshly mounted tmpfs,
    unmounted at the end. Needs root."""
    mounts = []

    def mount(size="16m", name=None):
        if not IS_ROOT:
            pytest.skip("needs root to mount a tmpfs (CI runs as root)")
        path = tmp_path / (name or ("tmpfs-%d" % len(mounts)))
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", str(path)], check=True)
        mounts.append(str(path))
        return str(path)

    yield mount
    for m in reversed(mounts):
        subprocess.run(["umount", "-l", m], check=False)


def fill(path, leave_bytes=0, name="filler"):
    """Writes a file into path until only about leave_bytes stay free."""
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    want = max(0, free - leave_bytes)
    target = os.path.join(path, name)
    with open(target, "wb") as f:
        chunk = b"\0" * 65536
        written = 0
        try:
            while written < want:
                n = min(len(chunk), want - written)
                f.write(chunk[:n])
                written += n
            f.flush()
            os.fsync(f.fileno())
        except OSError:
            pass
    return target
