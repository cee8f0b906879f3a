"""pytest fixture for the Qdrant test double (tests/qdrant/double.py).

Use it from a test module with `from qdrant_fixture import qdrant_double`
(pytest puts tests/integration on sys.path) and call the factory:

    def test_x(qdrant_double):
        q = qdrant_double(api_key="k")       # started on a random port
        requests.get(q.url + "/collections", headers={"api-key": "k"})
        q.fault(kind="wal_full", count=3, ops=["create_index"])
        q.stop(); q.restart()                # kill -9, then same port, same data
        assert q.requests()[-1]["status"] == 200

At teardown every double is stopped and the test fails if the double recorded
a violation (a request a real Qdrant would refuse, an unknown route, an
operation the double does not implement, or an answer of the double that does
not match the spec), unless the test opted out with
`qdrant_double(allow_violations=True)` or called `q.expect_violations()`.

The double runs with --check-responses (its own answers are validated against
the spec too) and keeps its state in a temporary --data-dir, so a restart
keeps the points like a real server does.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOUBLE = os.path.join(ROOT, "tests", "qdrant", "double.py")
PYTHON = "/usr/bin/python3"  # Debian's python3-jsonschema lives here, not in pyenv


class QdrantDouble:
    """One running double process.  url is http://127.0.0.1:PORT."""

    def __init__(self, api_key=None, allow_violations=False, lenient_fields=False):
        self.api_key = api_key
        self.allow_violations = allow_violations
        self.lenient_fields = lenient_fields
        self.data_dir = tempfile.mkdtemp(prefix="qdrant-double-")
        self.port = 0
        self.proc = None
        self.url = None
        self._seen_violations = []  # violations of earlier processes (before a restart)

    # process -----------------------------------------------------------------
    def start(self, timeout_s=15):
        args = [PYTHON, DOUBLE, "--port", str(self.port), "--data-dir", self.data_dir, "--check-responses"]
        if self.api_key is not None:
            args += ["--api-key", self.api_key]
        if self.lenient_fields:
            args.append("--lenient-fields")
        # stderr goes to a file: a pipe nobody reads could fill up and block the double
        self.log_path = os.path.join(self.data_dir, "double.log")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log)
        deadline = time.time() + timeout_s
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
            with open(self.log_path, errors="replace") as log:
                raise RuntimeError("qdrant double did not start: %r\n%s" % (line, log.read()[-3000:]))
        self.port = int(line.split()[-1])
        self.url = "http://127.0.0.1:%d" % self.port
        while time.time() < deadline:  # the socket is bound before the line is printed
            try:
                self._control("GET", "fault")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.02)
        raise RuntimeError("qdrant double does not answer on %s" % self.url)

    def stop(self):
        """Kill the server (SIGKILL: no goodbye, like a crashed or unplugged Qdrant)."""
        if self.proc and self.proc.poll() is None:
            try:
                self._seen_violations += self.violations()
            except (urllib.error.URLError, ConnectionError):
                pass
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self.proc:
            self.proc.stdout.close()
        self.proc = None

    def restart(self):
        """Start again on the same port with the same data."""
        self.stop()
        deadline = time.time() + 10
        while True:
            try:
                return self.start()
            except RuntimeError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)

    # control endpoints --------------------------------------------------------
    def _control(self, method, name, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("%s/__double__/%s" % (self.url, name), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise ValueError(e.read().decode()) from None

    def fault(self, **cmd):
        """POST /__double__/fault, e.g. fault(kind="hang", count=1, seconds=3)."""
        return self._control("POST", "fault", cmd)

    def violations(self):
        return self._control("GET", "violations")

    def requests(self):
        return self._control("GET", "requests")

    def clear_logs(self):
        self._control("DELETE", "violations")
        self._control("DELETE", "requests")

    def expect_violations(self):
        """Opt out of the teardown check (a test that sends invalid requests on purpose)."""
        self.allow_violations = True

    def headers(self):
        """Headers a client of this double must send (api-key when configured)."""
        h = {"Content-Type": "application/json"}
        if self.api_key is not None:
            h["api-key"] = self.api_key
        return h

    def all_violations(self):
        live = self.violations() if self.proc and self.proc.poll() is None else []
        return self._seen_violations + live

    def close(self):
        found = []
        try:
            found = self.all_violations()
        finally:
            self.stop()
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return found


@pytest.fixture
def qdrant_double():
    """Factory: qdrant_double(api_key=None, allow_violations=False, lenient_fields=False)."""
    started = []

    def factory(api_key=None, allow_violations=False, lenient_fields=False):
        d = QdrantDouble(api_key=api_key, allow_violations=allow_violations,
                         lenient_fields=lenient_fields).start()
        started.append(d)
        return d

    yield factory
    problems = []
    for d in started:
        found = d.close()
        if found and not d.allow_violations:
            problems.append(found)
    if problems:
        pytest.fail("the Qdrant double recorded requests a real Qdrant would refuse (or it could not "
                    "serve):\n" + json.dumps(problems, indent=1)[:6000], pytrace=False)
