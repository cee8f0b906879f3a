"""pytest fixture for a real Debian `redis-server` on a random loopback port.

Use it from a test module with `from redis_fixture import redis_server`
(pytest puts tests/integration on sys.path) and call the factory:

    def test_x(redis_server, start_lucy):
        r = redis_server(dir=some_dir, save="1 1")   # started and answering PING
        lucy = start_lucy(env={"REDIS_URL": r.url})
        r.cli("CONFIG", "GET", "dir")
        r.stop_process()  # SIGSTOP      r.cont()   # SIGCONT
        r.kill()          # kill -9      r.start()  # again, same port and dir

Every server is stopped at the end of the test (resumed first if it was
stopped). The whole module is skipped, with the reason, when there is no
redis-server binary (`apt-get install redis-server`; CI installs it).
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
HAVE_REDIS = os.access(REDIS_SERVER, os.X_OK) and os.access(REDIS_CLI, os.X_OK)

needs_redis = pytest.mark.skipif(not HAVE_REDIS, reason="no redis-server/redis-cli binary (apt-get install redis-server)")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RedisServer:
    """One redis-server process. url is redis://127.0.0.1:PORT[/db]."""

    def __init__(self, dir=None, save="", port=None, password=None, extra=None, db=0):
        self.own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="lucy-redis-")
        self.save = save
        self.port = port or free_port()
        self.password = password
        self.extra = list(extra or [])
        self.db = db
        self.proc = None
        self.log_path = os.path.join(tempfile.gettempdir(), "lucy-redis-%d.log" % self.port)

    @property
    def url(self):
        auth = (":%s@" % self.password) if self.password else ""
        return "redis://%s127.0.0.1:%d/%d" % (auth, self.port, self.db)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=10):
        """Starts (or restarts) the server on the same port and dir."""
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", self.save, "--appendonly", "no",
                "--daemonize", "no", "--logfile", self.log_path,
                "--dbfilename", "dump.rdb"]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited %s:\n%s" % (self.proc.returncode, self.log()))
            try:
                if self.cli("PING", timeout=1).strip() in ("PONG", ""):
                    return self
            except (subprocess.SubprocessError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING:\n" + self.log())

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def cli(self, *args, timeout=5):
        """Runs one command with redis-cli; returns its output (raw, errors
        included as text, e.g. "MISCONF ...")."""
        cmd = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "-n", str(self.db), "--no-auth-warning"]
        if self.password:
            cmd += ["-a", self.password]
        out = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
        return (out.stdout + out.stderr).strip()

    def info(self, section="persistence"):
        fields = {}
        for line in self.cli("INFO", section).splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
        return fields

    def stop_process(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def close(self):
        # SIGKILL: a test server's data is throw-away, and a server whose
        # dir is full would refuse a normal shutdown (its final save fails)
        self.kill()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def redis_server():
    """Factory: redis_server(dir=None, save="", port=None, password=None,
    extra=[...], db=0) -> a started RedisServer; all stopped at the end."""
    if not HAVE_REDIS:
        pytest.skip("no redis-server/redis-cli binary (apt-get install redis-server)")
    started = []

    def start(**kw):
        r = RedisServer(**kw)
        started.append(r)
        return r.start()

    yield start
    for r in started:
        r.close()
