"""deploy/: the compose file parses (Debian's docker-compose v1, no engine
needed) and keeps the hardening the incident taught; the systemd unit
verifies; the Dockerfile is multi-stage, non-root, checks liveness with lucy
itself."""
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import LUCY_BIN, ROOT

DEPLOY = os.path.join(ROOT, "deploy")


@pytest.fixture(scope="module")
def compose():
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose (Debian package) not installed; scripts/install-deps installs it")
    env = dict(os.environ, LUCY_API_TOKEN="test-token")
    out = subprocess.run(["docker-compose", "-f", os.path.join(DEPLOY, "docker-compose.yml"), "config"],
                         env=env, capture_output=True, text=True, check=True).stdout
    return yaml.safe_load(out)


def test_compose_services_and_logging(compose):
    services = compose["services"]
    assert set(services) == {"lucy", "redis", "qdrant"}
    for name, svc in services.items():
        log = svc.get("logging", {})
        assert log.get("driver") == "json-file", name
        assert log["options"]["max-size"] and log["options"]["max-file"], name
        hc = svc.get("healthcheck", {})
        assert hc.get("test") and hc.get("start_period"), name


def test_compose_lucy(compose):
    lucy = compose["services"]["lucy"]
    assert lucy["healthcheck"]["test"] == ["CMD", "lucy", "healthcheck", "--live"]
    for dep, cond in lucy["depends_on"].items():
        assert cond["condition"] == "service_started", "lucy must not wait for %s to be healthy" % dep
    volumes = lucy["volumes"]  # v1 prints short syntax: "source:target:mode"
    assert any(v.endswith(":/recordings:ro") for v in volumes), volumes
    assert any(v.startswith("lucy-data:") for v in volumes), volumes
    assert "lucy-data" in compose["volumes"]
    assert lucy["environment"]["LUCY_API_TOKEN"] == "test-token"


def test_compose_redis_flags(compose):
    cmd = " ".join(compose["services"]["redis"]["command"])
    assert "--maxmemory 256mb" in cmd
    assert re.search(r"--maxmemory-policy \S+", cmd)
    assert "--save" in cmd
    assert "--stop-writes-on-bgsave-error yes" in cmd
    conf = open(os.path.join(DEPLOY, "redis.conf")).read()
    assert "maxmemory 256mb" in conf and "stop-writes-on-bgsave-error yes" in conf


def test_compose_qdrant_wal(compose):
    env = compose["services"]["qdrant"]["environment"]
    assert int(env["QDRANT__STORAGE__WAL__WAL_CAPACITY_MB"]) > 0
    assert "/readyz" in " ".join(compose["services"]["qdrant"]["healthcheck"]["test"])


def test_systemd_unit_verifies(tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed; scripts/install-deps installs systemd")
    unit = open(os.path.join(DEPLOY, "lucy.service")).read()
    for needle in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ProtectSystem=strict",
                   "PrivateTmp=yes", "NoNewPrivileges=yes", "User=lucy", "LimitNOFILE="):
        assert needle in unit, needle
    # verify against the real binary (ExecStart must exist)
    path = tmp_path / "lucy.service"
    path.write_text(unit.replace("/usr/local/bin/lucy", LUCY_BIN))
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_dockerfile_shape():
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(stages) >= 2 and all(s.startswith("debian:12-slim") for s in stages)
    final = text[text.rindex("\nFROM "):]
    assert re.search(r"^USER (?!root)\S+", final, re.M)
    assert 'HEALTHCHECK' in final and '"lucy", "healthcheck", "--live"' in final
    assert "STOPSIGNAL SIGTERM" in final
    install = final.split("apt-get install", 1)[1].split("&&", 1)[0]
    for banned in ("curl ", "python", "-dev"):
        assert banned not in install, banned


def test_dockerfile_copies_what_the_build_reads():
    """The builder stage must get every input of the meson build (the web
    UI is embedded at build time from web/ by scripts/embed-web.py)."""
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    build = text[:text.rindex("\nFROM ")]
    copied = set()
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", build, re.M):
        copied.update(src.split())
    for needed in ("meson.build", "meson_options.txt", "src", "web", "scripts/embed-web.py"):
        assert needed in copied, "%s is not copied into the build stage" % needed
    assert "python3" in build.split("apt-get install", 1)[1].split("&&", 1)[0]
