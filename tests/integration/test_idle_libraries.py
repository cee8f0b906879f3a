"""What an idle lucy maps (issue 13, idle memory; src/dl.h): libcurl and
its thirty libraries only once lucy talks to another server, libsystemd
only when systemd runs it (test_systemd_notify.py). A lucy on the embedded
default maps neither."""
from qdrant_fixture import qdrant_double  # noqa: F401 (a fixture)


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

