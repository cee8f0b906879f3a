"""GET /recordings/{id}/audio (issue 8, src/plugins/call_recordings/audio.c):
a recording's bytes by id, with HTTP range requests (RFC 9110 §14), sent
from a file descriptor by the HTTP layer (lucy_http_reply_fd).

Locks are injected for real with the LD_PRELOAD shim (tests/faults/).
"""
import os
import shutil

import pytest
import requests

from conftest import BUILD_DIR, FIXTURES

AUDIO = os.path.join(FIXTURES, "audio")
LOCKSHIM = os.environ.get("LOCKSHIM_SO", os.path.join(BUILD_DIR, "tests", "faults", "liblockshim.so"))
needs_shim = pytest.mark.skipif(not os.path.exists(LOCKSHIM), reason="lockshim not built: " + LOCKSHIM)


def set_locks(control, rules):
    with open(control + ".new", "w") as f:
        f.write("".join(r + "\n" for r in rules))
    os.rename(control + ".new", control)


@pytest.fixture
def served(start_lucy, tmp_path):
    """A lucy that scanned goforward.m4a and cards-001.ogg (lock shim
    loaded, no rules): (lucy, {name: (id, path, bytes)}, control file)."""
    d = tmp_path / "recordings"
    d.mkdir()
    for n in ("goforward.m4a", "cards-001.ogg"):
        shutil.copy(os.path.join(AUDIO, n), str(d / n))
    control = str(tmp_path / "locks")
    set_locks(control, [])
    env = {"LUCY_RECORDINGS_DIRS": str(d), "LUCY_SCAN_SETTLE_S": "0", "LUCY_ASR_THREADS": "1"}
    if os.path.exists(LOCKSHIM):
        env.update({"LD_PRELOAD": LOCKSHIM, "LOCKSHIM_FILE": control})
    lucy = start_lucy(env=env)
    recs = lucy.wait_for(lambda: (lambda r: len(r) == 2 and r)(lucy.get("/recordings").json()["recordings"]),
                         timeout=30, what="two recordings scanned")
    out = {}
    for r in recs:
        path = r["paths"][0]["path"]
        with open(path, "rb") as f:
            out[os.path.basename(path)] = (r["id"], path, f.read())
    return lucy, out, control


def audio(lucy, rec_id, rng=None, method="GET", **kw):
    headers = kw.pop("headers", {})
    if rng is not None:
        headers["Range"] = rng
    return lucy.request(method, "/recordings/%s/audio" % rec_id, headers=headers, **kw)


def test_whole_file_with_type_and_headers(served):
    lucy, recs, _ = served
    for name, ctype in (("goforward.m4a", "audio/mp4"), ("cards-001.ogg", "audio/ogg")):
        rec_id, _, data = recs[name]
        r = audio(lucy, rec_id)
        assert r.status_code == 200, r.text
        assert r.content == data
        assert r.headers["Content-Type"] == ctype
        assert r.headers["Accept-Ranges"] == "bytes"
        assert int(r.headers["Content-Length"]) == len(data)
        assert r.headers["ETag"] == '"%s"' % rec_id
        assert "Content-Range" not in r.headers
    h = audio(lucy, recs["goforward.m4a"][0], method="HEAD")
    assert h.status_code == 200 and h.content == b""
    assert int(h.headers["Content-Length"]) == len(recs["goforward.m4a"][2])


@pytest.mark.parametrize("rng,first,last", [
    ("bytes=0-99", 0, 99),             # first bytes
    ("bytes=1000-1999", 1000, 1999),   # middle
    ("bytes=-500", None, None),        # suffix: the last 500
    ("bytes=12000-", 12000, None),     # open-ended
    ("bytes=100-99999999", 100, None), # last past the end: clamped
    ("bytes=-99999999", 0, None),      # suffix longer than the file: all of it
    ("bytes=5-5", 5, 5),               # one byte
])
def test_ranges(served, rng, first, last):
    lucy, recs, _ = served
    rec_id, _, data = recs["goforward.m4a"]
    size = len(data)
    if first is None:
        first = size - 500
    if last is None:
        last = size - 1
    r = audio(lucy, rec_id, rng)
    assert r.status_code == 206, r.text
    assert r.headers["Content-Range"] == "bytes %d-%d/%d" % (first, last, size)
    assert int(r.headers["Content-Length"]) == last - first + 1
    assert r.content == data[first:last + 1]
    assert r.headers["Content-Type"] == "audio/mp4"
    assert r.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize("rng", ["bytes={size}-", "bytes={size}-{size}", "bytes=-0", "bytes=9-2",
                                 "bytes=abc", "bytes=1-x", "bytes=", "bytes=99999999999999999999999-"])
def test_unsatisfiable_or_malformed_is_416(served, rng):
    lucy, recs, _ = served
    rec_id, _, data = recs["goforward.m4a"]
    r = audio(lucy, rec_id, rng.format(size=len(data)))
    assert r.status_code == 416, r.text
    assert r.headers["Content-Range"] == "bytes */%d" % len(data)
    body = r.json()
    assert body["error_type"] == "range_not_satisfiable" and "Range" in body["message"]


@pytest.mark.parametrize("rng", ["items=0-10", "bytes=0-1,5-9"])
def test_other_units_and_multiple_ranges_get_the_whole_file(served, rng):
    lucy, recs, _ = served
    rec_id, _, data = recs["goforward.m4a"]
    r = audio(lucy, rec_id, rng)
    assert r.status_code == 200 and r.content == data


def test_unknown_ids_are_404(served):
    lucy, _, _ = served
    for rec_id in ("0" * 64, "not-an-id", "..%2F..%2Fetc%2Fpasswd"):
        r = audio(lucy, rec_id)
        assert r.status_code == 404, r.text
        assert r.json()["error_type"] == "not_found"


def test_descriptors_are_closed(served):
    """The server closes every file it sent: no descriptor leaks."""
    lucy, recs, _ = served
    rec_id, _, data = recs["goforward.m4a"]
    fd_dir = "/proc/%d/fd" % lucy.proc.pid
    audio(lucy, rec_id, "bytes=0-0")
    before = len(os.listdir(fd_dir))
    with requests.Session() as s:
        for i in range(60):
            r = s.get(lucy.url + "/recordings/%s/audio" % rec_id, headers={"Range": "bytes=%d-" % i}, timeout=10)
            assert r.status_code == 206 and r.content == data[i:]
    # Aborted transfers too: read one chunk and drop the connection.
    for _ in range(10):
        r = requests.get(lucy.url + "/recordings/%s/audio" % rec_id, stream=True, timeout=10)
        next(r.iter_content(16))
        r.close()
    lucy.wait_for(lambda: len(os.listdir(fd_dir)) <= before + 2, timeout=10, what="descriptors closed")


@needs_shim
def test_locked_file_is_423(served):
    lucy, recs, control = served
    rec_id, path, _ = recs["goforward.m4a"]
    for rule in ("open EDEADLK ", "read EAGAIN "):
        set_locks(control, [rule + path])
        r = audio(lucy, rec_id, "bytes=0-")
        assert r.status_code == 423, r.text
        body = r.json()
        assert body["error_type"] == "file_locked" and "synced" in body["message"]
        assert int(r.headers["Retry-After"]) >= 1 and body["retry_after_s"] >= 1
    set_locks(control, [])
    assert audio(lucy, rec_id, "bytes=0-0").status_code == 206


def test_changed_or_missing_file_is_never_served_as_the_recording(served):
    lucy, recs, _ = served
    rec_id, path, data = recs["goforward.m4a"]
    with open(path, "ab") as f:
        f.write(b"\0" * 100)  # other bytes now: no longer this recording
    r = audio(lucy, rec_id)
    assert r.status_code in (404, 409), r.text  # 404 once the rescan moved the path
    assert r.headers["Content-Type"].startswith("application/json")
    other_id, other_path, _ = recs["cards-001.ogg"]
    os.unlink(other_path)
    r = audio(lucy, other_id)
    assert r.status_code == 404 and r.json()["error_type"] == "not_found", r.text


def test_token_is_required_and_only_in_the_header(start_lucy, tmp_path):
    d = tmp_path / "recordings"
    d.mkdir()
    shutil.copy(os.path.join(AUDIO, "goforward.m4a"), str(d / "goforward.m4a"))
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(d), "LUCY_SCAN_SETTLE_S": "0",
                           "LUCY_ASR_THREADS": "1", "LUCY_API_TOKEN": "s3cret-token"})
    auth = {"Authorization": "Bearer s3cret-token"}
    recs = lucy.wait_for(lambda: lucy.get("/recordings", headers=auth).json()["recordings"],
                         timeout=30, what="scanned")
    rec_id = recs[0]["id"]
    assert audio(lucy, rec_id).status_code == 401
    assert audio(lucy, rec_id, params={"token": "s3cret-token"}).status_code == 401
    assert audio(lucy, rec_id, "bytes=0-9", headers=dict(auth)).status_code == 206
