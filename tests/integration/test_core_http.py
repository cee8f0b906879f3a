"""Foundation: health/metrics shapes, JSON errors, auth, body limit, start-up
refusals and `lucy healthcheck` exit codes, against the real binary."""
import json
import os
import subprocess
import time

import requests

from conftest import LUCY_BIN, SAN_ENV


def test_liveness_shape(start_lucy):
    lucy = start_lucy()
    r = lucy.get("/health/live")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/health+json"
    assert r.json() == {"status": "pass"}


def test_readiness_shape(start_lucy):
    lucy = start_lucy()
    for path in ("/health", "/health/ready"):
        r = lucy.get(path)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == "application/health+json"
        doc = r.json()
        assert doc["status"] in ("pass", "warn")
        assert doc["serviceId"] == "lucy"
        assert doc["version"]
        for name in ("disk:free", "store:writable"):
            items = doc["checks"][name]
            assert isinstance(items, list) and items
            for item in items:
                for key in ("componentId", "componentType", "observedValue", "observedUnit", "status", "time"):
                    assert key in item, (name, key, item)
        assert doc["dependencies"]["disk"] == "ok"
        assert doc["dependencies"]["store"] == "ok"
        paths = [i["componentId"] for i in doc["checks"]["disk:free"]]
        assert lucy.data_dir in paths


def test_metrics_text(start_lucy):
    lucy = start_lucy()
    lucy.get("/health")
    lucy.get("/nope")
    r = lucy.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    text = r.text
    assert 'lucy_disk_free_bytes{path="%s",role="data"}' % lucy.data_dir in text
    assert "lucy_disk_free_pct{" in text
    assert 'lucy_check_status{check="store:writable",critical="1"} 0' in text
    assert 'lucy_http_requests_total{method="GET",route="/health",status="200"} 1' in text
    assert 'lucy_http_requests_total{method="GET",route="unmatched",status="404"} 1' in text
    for line in text.splitlines():
        assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2, line


def test_404_and_405_are_json(start_lucy):
    lucy = start_lucy()
    r = lucy.get("/no/such/thing")
    assert r.status_code == 404
    assert r.json()["error_type"] == "not_found"
    assert r.json()["message"]
    r = lucy.request("DELETE", "/health")
    assert r.status_code == 405
    assert r.json()["error_type"] == "method_not_allowed"
    assert r.headers["Allow"] == "GET"


def test_auth(start_lucy):
    lucy = start_lucy(env={"LUCY_API_TOKEN": "s3cret-token"})
    r = lucy.get("/config")
    assert r.status_code == 401
    assert r.json()["error_type"] == "unauthorized"
    assert "Bearer" in r.json()["message"]
    r = lucy.get("/config", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = lucy.get("/config", headers={"Authorization": "Bearer s3cret-token-and-more"})
    assert r.status_code == 401
    r = lucy.get("/config", headers={"Authorization": "Bearer s3cret-token"})
    assert r.status_code == 200
    # secrets are never returned
    assert r.json()["options"]["LUCY_API_TOKEN"] == "(set)"
    assert "s3cret-token" not in r.text
    # health, liveness and metrics need no token
    assert lucy.get("/health/live").status_code == 200
    assert lucy.get("/health").status_code == 200
    assert lucy.get("/metrics").status_code == 200
    assert "s3cret-token" not in lucy.log_text()


def test_body_limit_413(start_lucy):
    lucy = start_lucy()
    r = lucy.request("GET", "/config", data=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413
    assert r.json()["error_type"] == "payload_too_large"
    # chunked upload without Content-Length is cut off as well
    def gen():
        for _ in range(40):
            yield b"y" * 65536
    r = lucy.request("GET", "/config", data=gen())
    assert r.status_code == 413
    assert r.json()["error_type"] == "payload_too_large"
    assert lucy.get("/health/live").status_code == 200


def run_lucy(args, env=None, timeout=20):
    e = dict(SAN_ENV)
    e.update(env or {})
    return subprocess.run([LUCY_BIN] + args, env=e, capture_output=True, text=True, timeout=timeout)


def test_refuses_public_address_without_token(tmp_path):
    r = run_lucy(["serve", "--listen", "0.0.0.0:0", "--data", str(tmp_path / "d")])
    assert r.returncode == 2
    assert "LUCY_API_TOKEN" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_invalid_config_names_option(tmp_path):
    r = run_lucy(["serve", "--data", str(tmp_path / "d")], env={"LUCY_DISK_WARN_PCT": "150"})
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "LUCY_DISK_WARN_PCT" in lines[0] and "0 to 100" in lines[0]
    r = run_lucy(["serve", "--bogus"])
    assert r.returncode == 2
    r = run_lucy(["frobnicate"])
    assert r.returncode == 2
    r = run_lucy(["version"])
    assert r.returncode == 0 and r.stdout.startswith("lucy ")


def test_config_file_and_flag_precedence(start_lucy, tmp_path):
    conf = tmp_path / "lucy.conf"
    conf.write_text("LUCY_SCAN_INTERVAL_S=77\nLUCY_LOG_LEVEL=debug\n")
    lucy = start_lucy(env={"LUCY_SCAN_INTERVAL_S": "55"}, args=["--config", str(conf)])
    opts = lucy.get("/config").json()["options"]
    assert opts["LUCY_SCAN_INTERVAL_S"] == 77  # file beats environment
    assert opts["LUCY_LOG_LEVEL"] == "debug"


def test_healthcheck_exit_codes(start_lucy):
    lucy = start_lucy()
    listen = {"LUCY_LISTEN": "127.0.0.1:%d" % lucy.port}
    # From the listen address: /health/live by default, --live, --ready.
    for args in ([], ["--live"], ["--ready"], ["--live", "--live"]):
        r = run_lucy(["healthcheck"] + args, env=listen)
        assert r.returncode == 0, (args, r.stderr)
    # --url is the full URL of the endpoint.
    for path in ("/health/live", "/health/ready", "/health"):
        r = run_lucy(["healthcheck", "--url", lucy.url + path])
        assert r.returncode == 0, (path, r.stderr)
    # Usage errors: exit 2, one "lucy: ..." line that says what to do.
    for args, words in [
            (["--live", "--ready"], "cannot be combined"),
            (["--ready", "--live"], "cannot be combined"),
            (["--live", "--url", lucy.url + "/health/live"], "full URL"),
            (["--url", lucy.url + "/health/ready", "--ready"], "full URL"),
            (["--url"], "needs a URL"),
            (["--url", "ftp://127.0.0.1/health/live"], "not an http(s) URL"),
            (["--url", "http://[::1"], "not an http(s) URL")]:
        r = run_lucy(["healthcheck"] + args, env=listen)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("lucy: ") and words in lines[0], (args, lines)
        assert "e.g." in lines[0] or "give" in lines[0], lines
    # Something that is not a health endpoint answers 404: unhealthy, with the fix.
    r = run_lucy(["healthcheck", "--url", lucy.url + "/nothing-here"])
    assert r.returncode == 1
    assert r.stderr.strip() == ("lucy: unhealthy: %s/nothing-here: answered HTTP 404; that is not a "
                                "lucy health endpoint; use /health/live or /health/ready" % lucy.url)
    url = lucy.url + "/health/live"
    assert lucy.stop() == 0
    for args in (["--url", url], []):
        r = run_lucy(["healthcheck"] + args, env=listen)
        assert r.returncode == 1
        assert r.stderr.strip() == ("lucy: unhealthy: %s: couldn't connect; is lucy running on "
                                    "that address? (LUCY_LISTEN, or --url)" % url), r.stderr


def test_healthcheck_ready_fails_with_reason(start_lucy):
    """A required Redis that is down fails readiness (503) but not liveness."""
    lucy = start_lucy(env={"REDIS_URL": "redis://127.0.0.1:1", "LUCY_READY_REQUIRES": "redis"})
    listen = {"LUCY_LISTEN": "127.0.0.1:%d" % lucy.port}
    lucy.wait_for(lambda: lucy.get("/health/ready").status_code == 503, timeout=20,
                  what="readiness fails")
    assert run_lucy(["healthcheck"], env=listen).returncode == 0
    r = run_lucy(["healthcheck", "--ready"], env=listen)
    assert r.returncode == 1
    assert r.stderr.strip() == ("lucy: unhealthy: %s/health/ready: answered HTTP 503; lucy is up "
                                "but not ready; GET /health/ready or `lucy doctor` says which "
                                "check fails and what to do" % lucy.url), r.stderr


def test_kv_cli_on_the_embedded_backend(tmp_path):
    env = {"LUCY_DATA_DIR": str(tmp_path / "d")}
    # persistence is a Redis check: on SQLite it says so and succeeds
    r = run_lucy(["kv", "persistence"], env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["backend"] == "sqlite" and out["applies"] is False
    assert "embedded SQLite" in out["message"] and "REDIS_URL" in out["message"]
    # an absent key: exit 1, null value, a "not found" line that says what to do
    r = run_lucy(["kv", "get", "missing-key"], env=env)
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"key": "missing-key", "value": None}
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("lucy: kv get: key missing-key not found") and "lucy kv set" in last
    assert run_lucy(["kv", "set", "k", "v"], env=env).returncode == 0
    r = run_lucy(["kv", "get", "k"], env=env)
    assert r.returncode == 0 and json.loads(r.stdout) == {"key": "k", "value": "v"}


def test_sigterm_exits_zero_quickly(start_lucy):
    lucy = start_lucy()
    t0 = time.time()
    assert lucy.stop(timeout=15) == 0
    assert any(l.get("msg") == "stopped" for l in lucy.log_lines())


def test_readme_documents_every_option(start_lucy):
    """The README's configuration table must list every option lucy has."""
    from conftest import ROOT
    readme = open(os.path.join(ROOT, "README.md")).read()
    lucy = start_lucy()
    options = lucy.get("/config").json()["options"]
    missing = [name for name in options if "`%s`" % name not in readme]
    assert not missing, "options missing from README.md: %s" % missing


def test_a_fresh_store_logs_every_migration_in_one_line(start_lucy):
    """One "store migrated" line names every version applied: one line per
    migration was cut by the log's repeat suppression after the first."""
    import sqlite3
    lucy = start_lucy()
    lines = [l for l in lucy.log_lines() if l.get("msg") == "store migrated"]
    assert len(lines) == 1, lines
    con = sqlite3.connect(os.path.join(lucy.data_dir, "lucy.db"))
    recorded = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY version")]
    con.close()
    assert sorted(lines[0]["versions"]) == recorded and lines[0]["migrations"] == len(recorded)


def test_an_invalid_time_zone_stops_serve_before_it_touches_the_data_dir(tmp_path):
    """README: an invalid value stops lucy with one line and exit 2. The
    zone is checked with the configuration, before the data dir is made."""
    import subprocess
    from conftest import LUCY_BIN, SAN_ENV
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUCY_")}
    env.update(SAN_ENV, LUCY_TIMEZONE="Mars/Base", LUCY_LISTEN="127.0.0.1:0")
    r = subprocess.run([LUCY_BIN, "serve", "--data", str(data)], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "LUCY_TIMEZONE" in r.stderr and "Europe/Berlin" in r.stderr, r.stderr
    assert not data.exists()
