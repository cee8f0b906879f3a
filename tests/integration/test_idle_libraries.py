"""What an idle lucy maps (issue 13, idle memory; src/dl.h): libcurl and
its thirty libraries only once lucy talks to another server, libsystemd
only when systemd runs it (test_systemd_notify.py). A lucy on the embedded
default maps neither."""
import os
import subprocess

import pytest
from conftest import BUILD_DIR, LUCY_BIN, SAN_ENV
from qdrant_fixture import qdrant_double  # noqa: F401 (a fixture)
from test_webhook import BASE_ENV, message_body, post, wait_search


def mapped(pid):
    """The shared objects in the process's address space, by file name."""
    with open("/proc/%d/maps" % pid) as f:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in f if "/" in line}


def has(pid, prefix):
    return any(name.startswith(prefix) for name in mapped(pid))


def test_default_lucy_maps_neither_libcurl_nor_libsystemd(start_lucy):
    lucy = start_lucy()
    for path in ("/health", "/metrics", "/recordings"):
        assert lucy.get(path).status_code == 200
    assert not has(lucy.proc.pid, "libcurl."), sorted(mapped(lucy.proc.pid))
    assert not has(lucy.proc.pid, "libsystemd."), sorted(mapped(lucy.proc.pid))


def test_libcurl_opens_for_a_server_to_talk_to(start_lucy, qdrant_double):
    q = qdrant_double()
    lucy = start_lucy(env={"QDRANT_URL": q.url})
    assert lucy.get("/health").status_code in (200, 503)
    assert has(lucy.proc.pid, "libcurl.so.4")


def test_redis_alone_maps_no_libcurl(start_lucy):
    """REDIS_URL is checked by the redis backend's own parser: a lucy with
    Redis and no other server never opens libcurl (Redis need not run)."""
    lucy = start_lucy(env={"REDIS_URL": "redis://:p@ss@127.0.0.1:1/0"})
    assert lucy.get("/health").status_code == 200
    assert not has(lucy.proc.pid, "libcurl."), sorted(mapped(lucy.proc.pid))


def test_default_text_in_a_config_file_maps_no_libcurl(start_lucy, tmp_path):
    """A config file that spells out a URL option's default (a copied
    example) is the default: not checked, libcurl not opened."""
    conf = tmp_path / "lucy.conf"
    conf.write_text("WHATSAPP_GRAPH_URL = https://graph.facebook.com/v24.0\n")
    lucy = start_lucy(args=["--config", str(conf)])
    assert lucy.get("/health").status_code == 200
    assert not has(lucy.proc.pid, "libcurl."), sorted(mapped(lucy.proc.pid))


DLSHIM = os.environ.get("DLSHIM_SO", os.path.join(BUILD_DIR, "tests", "faults", "libdlshim.so"))
needs_dlshim = pytest.mark.skipif(not os.path.exists(DLSHIM), reason="dlshim not built: " + DLSHIM)


@needs_dlshim
@pytest.mark.parametrize("loader_message", [True, False], ids=["dlerror", "no-dlerror"])
def test_without_libcurl_lucy_runs_and_says_what_to_install(start_lucy, loader_message):
    """libcurl missing (tests/faults/dlshim.c) with servers configured: lucy
    starts, /health warns (200) with the remedy, webhooks are acknowledged
    and stored, /ask answers without its LLM and says why."""
    env = dict(BASE_ENV, LD_PRELOAD=DLSHIM, LUCY_DLSHIM_MISSING="libcurl.so.4",
               QDRANT_URL="http://127.0.0.1:1", LUCY_LLM_URL="http://127.0.0.1:1/v1")
    if not loader_message:
        env["LUCY_DLSHIM_NOERROR"] = "1"
    lucy = start_lucy(env=env)
    remedy = "install Debian's libcurl4"

    def qdrant_output():
        r = lucy.get("/health")
        assert r.status_code == 200, r.text
        return [c.get("output", "") for c in r.json()["checks"].get("qdrant:ready", [])]
    outputs = lucy.wait_for(lambda: [o for o in qdrant_output() if remedy in o], what="qdrant warns")
    assert ("libcurl.so.4" in outputs[0]) or loader_message, outputs

    r = post(lucy, message_body("wamid.NOCURL", text="stored without libcurl"))
    assert r.status_code == 200, r.text
    wait_search(lucy, "stored without libcurl", "wamid.NOCURL")
    ask = lucy.get("/ask?q=stored+without+libcurl")
    assert ask.status_code == 200, ask.text
    assert ask.json()["retrieval"]["llm"] == "unavailable"
    assert remedy in ask.json()["retrieval"]["llm_error"]
    assert not has(lucy.proc.pid, "libcurl.")


@needs_dlshim
def test_healthcheck_without_libcurl_says_what_to_install(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "QDRANT_", "REDIS_"))}
    env.update(SAN_ENV)
    env.update(LD_PRELOAD=DLSHIM, LUCY_DLSHIM_MISSING="libcurl.so.4", LUCY_DATA_DIR=str(tmp_path))
    p = subprocess.run([LUCY_BIN, "healthcheck"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p
    assert "libcurl cannot be opened" in p.stderr and "install Debian's libcurl4" in p.stderr, p.stderr
