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


SPEECH_URL = "http://speech:8080/v1/audio/transcriptions"


def compose_config(*args, **env):
    """The compose file as docker-compose resolves it (variables, anchors)."""
    if not shutil.which("docker-compose"):
        pytest.skip("docker-compose (Debian package) not installed; scripts/install-deps installs it")
    env = dict({k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "WHISPER_"))},
               LUCY_API_TOKEN="test-token", **env)
    out = subprocess.run(["docker-compose", "-f", os.path.join(DEPLOY, "docker-compose.yml"),
                          *args, "config"], env=env, capture_output=True, text=True,
                         check=True).stdout
    return yaml.safe_load(out)


@pytest.fixture(scope="module")
def compose():
    return compose_config()


@pytest.fixture(scope="module")
def compose_speech():
    """With the opt-in speech service, as the README says to start it."""
    return compose_config("--profile", "speech", LUCY_ASR_URL=SPEECH_URL)


def test_compose_services_and_logging(compose):
    services = compose["services"]
    assert set(services) == {"lucy", "redis", "qdrant", "speech"}
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
    # every VOLUME exists in the image, owned by the USER: a fresh named
    # volume takes its owner from there (else root, and lucy cannot write)
    user = re.search(r"^USER (\S+)", final, re.M).group(1)
    for volume in re.findall(r'^VOLUME \["([^"]+)"\]', final, re.M):
        assert re.search(r"install -d -o %s -g %s( -m \d+)? %s\b" % (user, user, re.escape(volume)),
                         final), volume


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


def test_compose_speech_service_is_opt_in_and_keeps_its_model(compose):
    speech = compose["services"]["speech"]
    assert speech["profiles"] == ["speech"]  # not started without --profile speech
    assert speech["image"].startswith("ghcr.io/ggml-org/whisper.cpp:")
    assert "ports" not in speech  # only lucy talks to it
    assert any(v.startswith("speech-models:/models") for v in speech["volumes"]), speech
    assert "speech-models" in compose["volumes"]  # named: survives a re-create
    script = " ".join(speech["command"])
    assert "--inference-path /v1/audio/transcriptions" in script and "--convert" in script
    assert "download-ggml-model.sh" in script  # first start pulls the model into the volume
    # lucy must not need it: no dependency, so the default stack starts without it
    assert "speech" not in compose["services"]["lucy"].get("depends_on", {})
    # without the profile's variable lucy keeps its own engine
    assert compose["services"]["lucy"]["environment"]["LUCY_ASR_URL"] in ("", None)


def test_compose_lucy_reaches_the_speech_service(compose_speech):
    lucy = compose_speech["services"]["lucy"]["environment"]
    assert lucy["LUCY_ASR_URL"] == SPEECH_URL
    assert lucy["LUCY_ASR_ENGINE"] == "auto"  # auto + a URL = the http engine
    script = " ".join(compose_speech["services"]["speech"]["command"])
    port = re.search(r"--port (\d+)", script).group(1)
    path = re.search(r"--inference-path (\S+)", script).group(1)
    assert SPEECH_URL == "http://speech:%s%s" % (port, path)


def test_compose_lucy_environment_names_are_lucy_options(compose_speech, start_lucy):
    """Every LUCY_*/REDIS_*/QDRANT_*/WHATSAPP_* name the compose file gives
    lucy is an option the real binary knows (its GET /config), and it
    accepts the compose file's ASR values."""
    env = compose_speech["services"]["lucy"]["environment"]
    lucy = start_lucy(env={k: str(env[k]) for k in ("LUCY_ASR_ENGINE", "LUCY_ASR_URL",
                                                    "LUCY_ASR_IDLE_UNLOAD_S")})
    r = lucy.get("/config")
    assert r.status_code == 200, r.text
    options = r.json()["options"]
    unknown = sorted(k for k in env if k not in options)
    assert not unknown, "not lucy options: %s" % unknown
    assert options["LUCY_ASR_URL"] == SPEECH_URL
    assert options["LUCY_ASR_IDLE_UNLOAD_S"] == int(env["LUCY_ASR_IDLE_UNLOAD_S"])
