"""Redis as lucy's shared kv backend (issue 5, DESIGN §1, §5, §10).

Black-box tests of the real binary against a real Debian redis-server
(redis_fixture.py) with the faults injected for real:
  * MISCONF: Redis with save points and `dir` on a 2 MiB tmpfs; the tmpfs is
    filled, BGSAVE fails, writes (and PING) get MISCONF. /health warns and
    names redis:persistence with the remedy; freeing space brings it back.
    With LUCY_REDIS_AUTOHEAL=1 lucy lifts the write stop before the space is
    freed and restores the setting after a good save; a server that forbids
    CONFIG is left alone and /health says so.
  * Hung: SIGSTOP; /health keeps answering from its cache while redis:ping
    fails by timeout; SIGCONT recovers.
  * Down: kill -9; reconnect with backoff when it comes back on the same
    port; no thread leak.
  * Two lucy processes sharing one Redis share the rate limit.
  * The WhatsApp plugin on the kv interface: two instances process a wamid
    once and share a sender's budget; an alias PUT on one instance shows on
    the other (also for a contact only the first has seen); with Redis hung
    or down, contacts answer from the local store, and an alias PUT during
    the outage is replayed into the emptied Redis; a message retried after
    an injected write failure (a trigger raising inside the worker's
    transaction) takes the sender's limit once, on both backends.
Speed is not asserted here (scripts/bench-redis measures it).
"""
import json
import os
import subprocess
import time

import pytest
import requests

from conftest import LUCY_BIN, SAN_ENV, fill
from redis_fixture import needs_redis, redis_server  # noqa: F401 (fixture)

pytestmark = needs_redis

FAST = {"LUCY_REDIS_TIMEOUT_MS": "300"}


def health(lucy, timeout=5):
    r = lucy.get("/health", timeout=timeout)
    assert r.status_code in (200, 503), r.text
    return r.json()


def items(doc, check):
    return doc["checks"].get(check, [])


def status_of(doc, check):
    order = {"pass": 0, "warn": 1, "fail": 2}
    its = items(doc, check)
    return max((it["status"] for it in its), key=lambda s: order[s]) if its else None


def main_item(doc, check):
    """The item about the server (not the autoheal one)."""
    return [it for it in items(doc, check) if it["componentId"] != "autoheal"][0]


def threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


# ---- MISCONF, for real --------------------------------------------------------

def misconf_redis(redis_server, tmpfs, extra=None):
    """A Redis whose dir is a full 2 MiB tmpfs and whose last BGSAVE failed:
    it refuses writes and PING with MISCONF."""
    d = tmpfs("2m", name="redis-dir")
    r = redis_server(dir=d, save="1 1", extra=extra)
    return r, d


def break_persistence(r, d):
    """Fills Redis's dir, writes data that cannot be saved, BGSAVE fails."""
    filler = fill(d, leave_bytes=0)
    # random bytes do not compress: the snapshot cannot fit
    r.cli("EVAL", "for i=1,64 do redis.call('SET', 'filler:'..i, string.rep(string.char(math.random(0,255)), 4096) .. math.random()) end return 1", "0")
    deadline = time.time() + 15
    while time.time() < deadline:
        info = r.info()
        if info.get("rdb_bgsave_in_progress") == "0":
            if info.get("rdb_last_bgsave_status") == "err":
                break
            r.cli("BGSAVE")
        time.sleep(0.2)
    assert r.info()["rdb_last_bgsave_status"] == "err", r.info()
    out = r.cli("SET", "probe", "1")
    assert out.startswith("MISCONF"), out
    return filler


def test_misconf_warns_with_remedy_then_recovers(start_lucy, redis_server, tmpfs):
    r, d = misconf_redis(redis_server, tmpfs)
    lucy = start_lucy(env=dict(FAST, REDIS_URL=r.url))
    lucy.wait_for(lambda: status_of(health(lucy), "redis:persistence") == "pass", what="redis pass")
    filler = break_persistence(r, d)

    def misconf_seen():
        doc = health(lucy)
        return doc if status_of(doc, "redis:persistence") == "warn" and \
            status_of(doc, "redis:ping") == "warn" else None
    doc = lucy.wait_for(misconf_seen, what="MISCONF in /health")
    assert doc["status"] == "warn"  # redis is not required: readiness stays 200
    assert lucy.get("/health").status_code == 200
    out = main_item(doc, "redis:persistence")["output"]
    assert "MISCONF" in out and "stop-writes-on-bgsave-error no" in out and "free disk space" in out
    assert "docs/operations.md" in out
    ping = main_item(doc, "redis:ping")["output"]
    assert "up but cannot persist" in ping  # not "down"
    assert "MISCONF" in doc["dependencies"]["redis"]
    m = lucy.get("/metrics").text
    assert "lucy_redis_up 1" in m  # it answers: up, just not persisting

    os.unlink(filler)
    r.cli("BGSAVE")  # the runbook: free space, then BGSAVE
    lucy.wait_for(lambda: status_of(health(lucy), "redis:persistence") == "pass" and
                  status_of(health(lucy), "redis:ping") == "pass", timeout=30, what="recovery")
    assert r.cli("SET", "probe", "2") == "OK"
    assert health(lucy)["status"] == "pass"


def test_misconf_fails_readiness_when_required(start_lucy, redis_server, tmpfs):
    r, d = misconf_redis(redis_server, tmpfs)
    lucy = start_lucy(env=dict(FAST, REDIS_URL=r.url, LUCY_READY_REQUIRES="redis"))
    lucy.wait_for(lambda: health(lucy)["status"] == "pass", what="pass")
    break_persistence(r, d)
    lucy.wait_for(lambda: lucy.get("/health").status_code == 503, what="readiness 503")
    assert status_of(health(lucy), "redis:persistence") == "fail"


def test_autoheal_resumes_writes_then_restores(start_lucy, redis_server, tmpfs):
    r, d = misconf_redis(redis_server, tmpfs)
    lucy = start_lucy(env=dict(FAST, REDIS_URL=r.url, LUCY_REDIS_AUTOHEAL="1"))
    lucy.wait_for(lambda: status_of(health(lucy), "redis:persistence") == "pass", what="pass")
    assert [it for it in items(health(lucy), "redis:persistence") if it["componentId"] == "autoheal"]
    filler = break_persistence(r, d)

    # lucy lifts the write stop by itself, before any space is freed
    lucy.wait_for(lambda: r.cli("SET", "probe", "healed") == "OK", what="writes resume")
    assert r.cli("CONFIG", "GET", "stop-writes-on-bgsave-error").split()[-1] == "no"
    doc = lucy.wait_for(lambda: (lambda d_: d_ if [it for it in items(d_, "redis:persistence")
                                                   if it["componentId"] == "autoheal" and it["status"] == "warn"]
                                 else None)(health(lucy)), what="autoheal shown")
    heal = [it for it in items(doc, "redis:persistence") if it["componentId"] == "autoheal"][0]
    assert "stop-writes-on-bgsave-error no" in heal["output"] and "Free disk space" in heal["output"]
    assert any(l.get("msg") == "redis auto-heal: writes re-enabled" and l["level"] == "warning"
               for l in lucy.log_lines())
    assert "lucy_redis_autoheal_active 1" in lucy.get("/metrics").text

    os.unlink(filler)  # a later save succeeds (Redis's own retry or lucy's BGSAVE)
    lucy.wait_for(lambda: r.cli("CONFIG", "GET", "stop-writes-on-bgsave-error").split()[-1] == "yes",
                  timeout=40, what="setting restored")
    assert r.info()["rdb_last_bgsave_status"] == "ok"
    assert any(l.get("msg") == "redis auto-heal: setting restored" for l in lucy.log_lines())
    lucy.wait_for(lambda: health(lucy)["status"] == "pass", timeout=20, what="pass again")


def test_autoheal_refused_when_config_is_forbidden(start_lucy, redis_server, tmpfs):
    r, d = misconf_redis(redis_server, tmpfs, extra=["--rename-command", "CONFIG", ""])
    lucy = start_lucy(env=dict(FAST, REDIS_URL=r.url, LUCY_REDIS_AUTOHEAL="1"))
    lucy.wait_for(lambda: status_of(health(lucy), "redis:ping") == "pass", what="pass")
    break_persistence(r, d)

    def refused():
        doc = health(lucy)
        its = [it for it in items(doc, "redis:persistence") if it["componentId"] == "autoheal"]
        return doc if its and "renamed or forbidden" in its[0].get("output", "") else None
    doc = lucy.wait_for(refused, what="refusal shown")
    assert status_of(doc, "redis:persistence") == "warn"
    assert r.cli("SET", "probe", "x").startswith("MISCONF")  # lucy changed nothing


# ---- hung and down --------------------------------------------------------------

def test_hung_redis_does_not_block_health(start_lucy, redis_server):
    r = redis_server()
    lucy = start_lucy(env=dict(FAST, REDIS_URL=r.url))
    lucy.wait_for(lambda: status_of(health(lucy), "redis:ping") == "pass", what="pass")
    r.stop_process()
    try:
        def timed_out():
            doc = health(lucy, timeout=2)  # each answer comes from the cache
            it = main_item(doc, "redis:ping")
            return doc if it["status"] == "warn" and "timeout" in it.get("output", "") else None
        doc = lucy.wait_for(timed_out, what="redis:ping fails by timeout")
        assert doc["status"] == "warn"
        worst = 0.0
        for _ in range(20):
            t0 = time.monotonic()
            assert lucy.get("/health", timeout=2).status_code == 200
            worst = max(worst, time.monotonic() - t0)
        print("slowest /health while Redis is stopped: %.1f ms" % (worst * 1000))
    finally:
        r.cont()
    lucy.wait_for(lambda: status_of(health(lucy), "redis:ping") == "pass", what="recovery")


def test_down_then_back_reconnects_without_thread_leak(start_lucy, redis_server):
    r = redis_server()
    lucy = start_lucy(env=dict(FAST, REDIS_URL=r.url))
    lucy.wait_for(lambda: health(lucy)["status"] == "pass", what="pass")
    before = threads(lucy.proc.pid)
    r.kill()
    doc = lucy.wait_for(lambda: (lambda d_: d_ if status_of(d_, "redis:ping") == "warn" else None)(health(lucy)),
                        what="down seen")
    assert "connection" in main_item(doc, "redis:ping")["output"]
    assert "lucy_redis_up 0" in lucy.get("/metrics").text
    time.sleep(2)  # several failed reconnects with backoff
    r.start()  # same port
    lucy.wait_for(lambda: health(lucy)["status"] == "pass", timeout=30, what="reconnected")
    assert "lucy_redis_up 1" in lucy.get("/metrics").text
    assert threads(lucy.proc.pid) == before
    msgs = [l.get("msg") for l in lucy.log_lines()]
    assert msgs.count("kv backend unreachable") == 1 and "kv backend reachable" in msgs


def test_wrong_password_is_named(start_lucy, redis_server):
    r = redis_server(password="right-pw")
    r.password = "wrong-pw-123"  # the URL lucy gets
    lucy = start_lucy(env=dict(FAST, REDIS_URL=r.url))
    r.password = "right-pw"
    doc = lucy.wait_for(lambda: (lambda d_: d_ if status_of(d_, "redis:ping") == "warn" else None)(health(lucy)),
                        what="auth failure")
    out = main_item(doc, "redis:ping")["output"]
    assert "wrongpass" in out and "REDIS_URL" in out
    assert "wrong-pw-123" not in json.dumps(doc) and "wrong-pw-123" not in lucy.log_text()
    assert lucy.get("/config").json()["options"]["REDIS_URL"] == "(set)"


# ---- shared rate limit ------------------------------------------------------------

def kv_cli(data_dir, env, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "REDIS_"))}
    e.update(SAN_ENV)
    e.update(env)
    e["LUCY_DATA_DIR"] = data_dir
    out = subprocess.run([LUCY_BIN, "kv"] + list(args), env=e, capture_output=True, text=True, timeout=30)
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_processes_share_the_rate_limit(redis_server, tmp_path):
    r = redis_server()
    env = {"REDIS_URL": r.url, "LUCY_RATE_LIMIT": "3/min"}
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    decisions = [kv_cli(d, env, "ratelimit", "sender:15550001234")["allowed"] for d in (a, b, a, b, a)]
    assert decisions == [True, True, True, False, False]
    # the embedded backend keeps one budget per instance
    local = {"LUCY_RATE_LIMIT": "3/min"}
    decisions = [kv_cli(d, local, "ratelimit", "sender:15550001234")["allowed"] for d in (a, b, a, b, a, b)]
    assert decisions == [True, True, True, True, True, True]
    assert kv_cli(a, local, "ratelimit", "sender:15550001234")["allowed"] is False


# ---- the webhook: nothing it accepted depends on Redis --------------------------

import hashlib  # noqa: E402
import hmac  # noqa: E402
import sqlite3  # noqa: E402
import urllib.parse  # noqa: E402

SECRET = "kv-test-secret"
WA_ENV = {"WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_VERIFY_TOKEN": "v", "LUCY_RATE_LIMIT": "1000/min"}
WA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      "src", "plugins", "whatsapp")


def _webhook_uses_kv():
    try:
        return any("lucy_kv_" in open(os.path.join(WA_DIR, f), errors="replace").read()
                   for f in os.listdir(WA_DIR) if f.endswith(".c"))
    except OSError:
        return False


needs_wa_on_kv = pytest.mark.skipif(not _webhook_uses_kv(),
                                    reason="the WhatsApp webhook does not use lucy_kv_* yet "
                                           "(issue 5 integration pending)")


def wa_body(wamid, sender="15550004242", text="hello", name="Kv Tester"):
    msg = {"from": sender, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
           "text": {"body": text}}
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "100000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "200000000000002"},
            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
            "messages": [msg]}}]}]}).encode()


def wa_post(lucy, body):
    sig = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return requests.post(lucy.url + "/webhook/whatsapp", data=body, timeout=30,
                         headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig})


def db(lucy, sql, args=()):
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(lucy.data_dir, "lucy.db"), uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def stored(lucy, wamids):
    marks = ",".join("?" * len(wamids))
    return dict(db(lucy, "SELECT wamid, state FROM wa_messages WHERE wamid IN (%s)" % marks, wamids))


def search_hits(lucy, q):
    r = lucy.get("/search?" + urllib.parse.urlencode({"q": q}))
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def test_webhooks_accepted_through_misconf_hang_and_outage(start_lucy, redis_server, tmpfs):
    r, d = misconf_redis(redis_server, tmpfs)
    lucy = start_lucy(env=dict(WA_ENV, **FAST, REDIS_URL=r.url))
    lucy.wait_for(lambda: health(lucy)["status"] == "pass", what="pass")
    acked = []

    def post_some(tag, n=4):
        for i in range(n):
            wamid = "wamid.KV-%s-%d" % (tag, i)
            resp = wa_post(lucy, wa_body(wamid, sender="1555000%04d" % i, text="kvfault %s" % tag))
            assert resp.status_code == 200, (tag, resp.status_code, resp.text)
            acked.append(wamid)
        # a 200 means it is on disk, now, whatever Redis does
        assert set(stored(lucy, acked)) == set(acked)

    def pending_kv():
        for line in lucy.get("/metrics").text.splitlines():
            if line.startswith("lucy_kv_pending_writes "):
                return int(float(line.split()[1]))
        return None

    filler = break_persistence(r, d)
    lucy.wait_for(lambda: status_of(health(lucy), "redis:persistence") == "warn", what="MISCONF seen")
    post_some("misconf")
    if _webhook_uses_kv():  # the profile-name (alias) writes Redis refused wait locally
        lucy.wait_for(lambda: (pending_kv() or 0) >= 1, what="alias writes pending")
        lucy.wait_for(lambda: set(stored(lucy, acked).values()) == {"done"},
                      what="processed all the same")
        refused = [l for l in lucy.log_lines() if l.get("msg") == "kv backend refused a command"]
        assert refused and refused[0]["kind"] == "misconf" and refused[0]["remedy"], refused
    os.unlink(filler)
    r.cli("BGSAVE")

    r.stop_process()
    try:
        lucy.wait_for(lambda: "timeout" in main_item(health(lucy), "redis:ping").get("output", ""),
                      what="hang seen")
        post_some("hung")
    finally:
        r.cont()

    r.kill()
    lucy.wait_for(lambda: "connection" in main_item(health(lucy), "redis:ping").get("output", ""),
                  what="outage seen")
    post_some("down")
    r.start()

    lucy.wait_for(lambda: set(stored(lucy, acked).values()) == {"done"}, timeout=60,
                  what="every accepted message processed")
    lucy.wait_for(lambda: health(lucy)["status"] == "pass", timeout=30, what="pass again")
    lucy.wait_for(lambda: pending_kv() == 0, timeout=30, what="pending kv writes replayed")
    if _webhook_uses_kv():  # the pending alias writes landed in Redis
        assert r.cli("GET", "lucy:wa:profile_name:15550000000") == "Kv Tester"
        assert "lucy_kv_replayed_total 0" not in lucy.get("/metrics").text


@needs_wa_on_kv
def test_two_instances_process_a_webhook_once(start_lucy, redis_server):
    r = redis_server()
    env = dict(WA_ENV, **FAST, REDIS_URL=r.url)
    a, b = start_lucy(env=env), start_lucy(env=env)
    body = wa_body("wamid.KV-TWICE", text="kvonce giraffe")
    assert wa_post(a, body).status_code == 200
    assert wa_post(b, body).status_code == 200
    for lucy in (a, b):  # both stored it (the inbox is local)...
        lucy.wait_for(lambda: stored(lucy, ["wamid.KV-TWICE"]) == {"wamid.KV-TWICE": "done"},
                      what="processed or skipped")
    # ...but only one instance processed (indexed) it
    time.sleep(2)
    hits = len(search_hits(a, "giraffe")) + len(search_hits(b, "giraffe"))
    assert hits == 1


@needs_wa_on_kv
def test_two_instances_share_the_sender_rate_limit(start_lucy, redis_server):
    r = redis_server()
    env = dict(WA_ENV, **FAST, REDIS_URL=r.url, LUCY_RATE_LIMIT="3/min")
    a, b = start_lucy(env=env), start_lucy(env=env)
    wamids = ["wamid.KV-RL-%d" % i for i in range(6)]
    for i, w in enumerate(wamids):
        assert wa_post((a, b)[i % 2], wa_body(w, sender="15550009191")).status_code == 200
        time.sleep(0.3)  # in order: the worker rate-limits at processing time
    limited = 0
    for lucy, mine in ((a, wamids[0::2]), (b, wamids[1::2])):
        lucy.wait_for(lambda: set(stored(lucy, mine).values()) == {"done"}, what="processed")
        limited += db(lucy, "SELECT coalesce(sum(rate_limited),0) FROM wa_messages")[0][0]
    assert limited == 3  # one budget of 3 across both instances, not 3 each


# ---- contacts: aliases shared through the kv, the local store as fallback ------

def contact(lucy, cid):
    r = lucy.get("/contacts/" + cid, timeout=10)
    return r.json() if r.status_code == 200 else r.status_code


def listed(lucy):
    r = lucy.get("/contacts", timeout=10)
    assert r.status_code == 200, r.text
    return {c["id"]: c for c in r.json()["contacts"]}


@needs_wa_on_kv
def test_alias_set_on_one_instance_shows_on_another(start_lucy, redis_server):
    r = redis_server()
    env = dict(WA_ENV, **FAST, REDIS_URL=r.url)
    a, b = start_lucy(env=env), start_lucy(env=env)
    both, only_a = "15550007001", "15550007002"
    assert wa_post(a, wa_body("wamid.KV-AL-1", sender=both, name="Pat Profile")).status_code == 200
    assert wa_post(b, wa_body("wamid.KV-AL-2", sender=both, name="Pat Profile")).status_code == 200
    assert wa_post(a, wa_body("wamid.KV-AL-3", sender=only_a, name="Quinn Profile")).status_code == 200
    a.wait_for(lambda: set(stored(a, ["wamid.KV-AL-1", "wamid.KV-AL-3"]).values()) == {"done"},
               what="A processed")
    b.wait_for(lambda: stored(b, ["wamid.KV-AL-2"]) == {"wamid.KV-AL-2": "done"}, what="B processed")
    assert contact(b, both)["alias_source"] == "profile"

    put = a.put("/contacts/" + both, json={"alias": "Pat (from A)"})
    assert put.status_code == 200 and put.json()["alias"] == "Pat (from A)", put.text
    c = contact(b, both)  # instance B, its own store never saw the PUT
    assert c["alias"] == "Pat (from A)" and c["alias_source"] == "user", c
    assert c["profile_name"] == "Pat Profile" and c["messages"] == 1
    assert listed(b)[both]["alias"] == "Pat (from A)"
    assert db(b, "SELECT user_alias FROM wa_contacts WHERE id = ?", (both,)) == [(None,)]

    # a contact only A has seen: B answers from what the kv shares
    c = contact(b, only_a)
    assert c["alias"] == "Quinn Profile" and c["alias_source"] == "profile", c
    assert c["messages"] == 0 and c["recent_messages"] == []
    assert a.put("/contacts/" + only_a, json={"alias": "Quinn Q."}).status_code == 200
    assert contact(b, only_a)["alias"] == "Quinn Q."
    assert only_a not in listed(b)  # the list is this instance's contacts
    assert contact(b, "15550007999") == 404

    # B's worker keeps its local copy current and titles B's index with it
    assert wa_post(b, wa_body("wamid.KV-AL-4", sender=both, text="kvalias pelican",
                              name="Pat Profile")).status_code == 200
    b.wait_for(lambda: stored(b, ["wamid.KV-AL-4"]) == {"wamid.KV-AL-4": "done"}, what="B processed")
    assert db(b, "SELECT user_alias FROM wa_contacts WHERE id = ?", (both,)) == [("Pat (from A)",)]
    hits = b.wait_for(lambda: search_hits(b, "pelican"), what="indexed on B")
    assert hits[0]["title"] == "Pat (from A)", hits
    # ... and re-titles what B indexed before it learnt the alias
    b.wait_for(lambda: [h for h in search_hits(b, "hello") if h["id"] == "wamid.KV-AL-2"
                        and h["title"] == "Pat (from A)"], what="B's older message re-titled")

    # clearing it on B (newer) wins on A over A's own older alias
    time.sleep(0.01)
    assert b.put("/contacts/" + both, json={"alias": None}).json()["alias_source"] == "profile"
    c = contact(a, both)
    assert c["alias"] == "Pat Profile" and c["alias_source"] == "profile", c


@needs_wa_on_kv
def test_contacts_answer_from_the_local_store_when_redis_is_down(start_lucy, redis_server):
    r = redis_server()  # no save points: a restart comes back empty, like a flushed Redis
    env = dict(WA_ENV, **FAST, REDIS_URL=r.url)
    a, b = start_lucy(env=env), start_lucy(env=env)
    cid = "15550007101"
    assert wa_post(a, wa_body("wamid.KV-DN-1", sender=cid, name="Robin Profile")).status_code == 200
    a.wait_for(lambda: stored(a, ["wamid.KV-DN-1"]) == {"wamid.KV-DN-1": "done"}, what="processed")
    assert a.put("/contacts/" + cid, json={"alias": "Robin (before)"}).status_code == 200

    r.stop_process()  # hung: at most the timeout, then fail fast
    try:
        c = contact(a, cid)
        assert c["alias"] == "Robin (before)" and c["messages"] == 1, c
    finally:
        r.cont()

    r.kill()
    a.wait_for(lambda: "connection" in main_item(health(a), "redis:ping").get("output", ""),
               what="outage seen")
    c = contact(a, cid)
    assert c["alias"] == "Robin (before)" and c["alias_source"] == "user", c
    assert listed(a)[cid]["alias"] == "Robin (before)"
    assert contact(b, cid) == 404  # B never saw it, and cannot ask the kv now
    # a PUT during the outage: stored here, queued for the others
    put = a.put("/contacts/" + cid, json={"alias": "Robin (during)"})
    assert put.status_code == 200 and put.json()["alias"] == "Robin (during)", put.text
    assert db(a, "SELECT count(*) FROM kv_pending WHERE key = ?", ("wa:user_alias:" + cid,)) == [(1,)]

    r.start()  # empty: the kv lost everything; the local copies did not
    a.wait_for(lambda: db(a, "SELECT count(*) FROM kv_pending") == [(0,)], timeout=30,
               what="pending alias replayed")
    shared = json.loads(r.cli("GET", "lucy:wa:user_alias:" + cid))
    assert shared["alias"] == "Robin (during)" and shared["set_at_ms"] > 0
    c = b.wait_for(lambda: (lambda c_: c_ if isinstance(c_, dict) else None)(contact(b, cid)),
                   what="B sees the replayed alias")
    assert c["alias"] == "Robin (during)" and c["alias_source"] == "user", c


# ---- a retried item takes the sender's rate limit once ----------------------------

def db_exec(lucy, sql):
    con = sqlite3.connect(os.path.join(lucy.data_dir, "lucy.db"), timeout=10)
    try:
        con.executescript(sql)
    finally:
        con.close()


@needs_wa_on_kv
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_retried_message_takes_the_rate_limit_once(start_lucy, redis_server, backend):
    env = dict(WA_ENV, **FAST, LUCY_RATE_LIMIT="2/min")
    if backend == "redis":
        env["REDIS_URL"] = redis_server().url
    lucy = start_lucy(env=env)
    sender, first = "15550007201", "wamid.KV-RT-1"
    # a real write failure inside the worker's transaction, for one item: the
    # item is rolled back alone and retried with backoff (1 s, 2 s, ...)
    db_exec(lucy, "CREATE TRIGGER test_fault BEFORE UPDATE OF state ON wa_messages "
                  "WHEN NEW.wamid = '%s' AND NEW.state = 'done' "
                  "BEGIN SELECT RAISE(ABORT, 'injected by the test'); END;" % first)
    assert wa_post(lucy, wa_body(first, sender=sender)).status_code == 200
    lucy.wait_for(lambda: db(lucy, "SELECT attempts FROM wa_messages WHERE wamid = ?",
                             (first,))[0][0] >= 3, timeout=30, what="three failed attempts")
    db_exec(lucy, "DROP TRIGGER test_fault;")
    lucy.wait_for(lambda: stored(lucy, [first]) == {first: "done"}, timeout=30, what="done")
    rest = ["wamid.KV-RT-2", "wamid.KV-RT-3"]
    for w in rest:
        assert wa_post(lucy, wa_body(w, sender=sender)).status_code == 200
    lucy.wait_for(lambda: set(stored(lucy, rest).values()) == {"done"}, what="processed")
    flags = dict(db(lucy, "SELECT wamid, rate_limited FROM wa_messages WHERE sender = ?", (sender,)))
    # four attempts at the first message took ONE of the two: the second
    # message is within the limit, the third is over it
    assert flags == {first: 0, rest[0]: 0, rest[1]: 1}, flags


# ---- OOM: maxmemory reached with noeviction -------------------------------------

def doctor_json(data_dir, env):
    """(exit code, document) of `lucy doctor --json` with the daemon's config."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("LUCY_", "REDIS_", "WHATSAPP_"))}
    e.update(SAN_ENV)
    e.update(env)
    e.update({"LUCY_DATA_DIR": data_dir, "LUCY_DISK_WARN_MB": "0", "LUCY_DISK_WARN_PCT": "0",
              "LUCY_DISK_CRITICAL_MB": "0", "LUCY_DISK_CRITICAL_PCT": "0", "LUCY_DISK_RESERVE_MB": "1"})
    p = subprocess.run([LUCY_BIN, "doctor", "--json"], env=e, capture_output=True, timeout=90)
    assert p.returncode in (0, 1), p.stderr.decode()[-3000:]
    return p.returncode, json.loads(p.stdout)


def metric(lucy, prefix):
    for line in lucy.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


OOM_REMEDY_WORDS = ["raise maxmemory", "maxmemory-policy allkeys-lru"]


@needs_wa_on_kv
def test_oom_is_named_and_refused_writes_are_replayed(start_lucy, redis_server):
    """Redis with maxmemory 1mb and noeviction, filled up: PING still answers
    and reads work, but every write gets -OOM. It must not be invisible:
    redis:memory fails (readiness when redis is required), lucy doctor is
    critical with the redis_memory remedy, alias and profile-name writes
    wait in kv_pending and land once Redis takes writes, and the rate
    limiter's decisions come from LUCY_RATE_LIMIT_ON_ERROR (counted)."""
    r = redis_server(extra=["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"])
    env = dict(WA_ENV, **FAST, REDIS_URL=r.url, LUCY_RATE_LIMIT="2/min")
    a = start_lucy(env=env)  # rate limits on error: allow (the default)
    b = start_lucy(env=dict(env, LUCY_READY_REQUIRES="redis", LUCY_RATE_LIMIT_ON_ERROR="deny"))
    known = "15550007301"
    assert wa_post(a, wa_body("wamid.KV-OOM-0", sender=known, name="Before Oom")).status_code == 200
    a.wait_for(lambda: stored(a, ["wamid.KV-OOM-0"]) == {"wamid.KV-OOM-0": "done"}, what="processed")
    assert r.cli("GET", "lucy:wa:profile_name:" + known) == "Before Oom"
    a.wait_for(lambda: status_of(health(a), "redis:memory") == "pass", what="redis:memory pass")
    assert b.get("/health").status_code == 200

    # filled up, then the limit of the incident: 1mb, noeviction
    r.cli("EVAL", "for i=1,3000 do redis.call('SET', 'filler:'..i, string.rep('x', 1000)) end "
                  "return 1", "0")
    assert r.cli("CONFIG", "SET", "maxmemory", "1mb") == "OK"
    out = r.cli("SET", "probe", "1")
    assert out.startswith("OOM"), out
    assert r.cli("PING") == "PONG"

    def oom_seen(lucy):
        doc = health(lucy)
        return doc if status_of(doc, "redis:memory") in ("warn", "fail") and \
            "OOM" in main_item(doc, "redis:memory").get("output", "") else None
    doc = a.wait_for(lambda: oom_seen(a), what="OOM in /health")
    assert doc["status"] == "warn" and a.get("/health").status_code == 200  # redis not required
    out = main_item(doc, "redis:memory")["output"]
    assert "refuses writes (OOM)" in out and "noeviction" in out, out
    for words in OOM_REMEDY_WORDS + ["LUCY_RATE_LIMIT_ON_ERROR=allow", "docs/operations.md"]:
        assert words in out, (words, out)
    assert "OOM" in doc["dependencies"]["redis"], doc["dependencies"]
    b.wait_for(lambda: b.get("/health").status_code == 503, what="readiness 503 when redis is required")
    assert status_of(health(b), "redis:memory") == "fail"
    assert "LUCY_RATE_LIMIT_ON_ERROR=deny" in main_item(health(b), "redis:memory")["output"]

    # lucy doctor names it
    rc, rep = doctor_json(a.data_dir, env)
    red = [c for c in rep["checks"] if c["name"] == "redis"][0]
    assert rc == 1 and red["status"] == "critical", red
    assert red["details"]["oom"] is True and red["details"]["oom_message"].startswith("OOM"), red
    assert "refuses writes (OOM)" in red["summary"], red
    for words in OOM_REMEDY_WORDS + ["kv_pending"]:
        assert words in red["remedy"], (words, red["remedy"])

    # refused writes wait locally: an alias PUT, a new sender's profile name
    put = a.put("/contacts/" + known, json={"alias": "Named During Oom"})
    assert put.status_code == 200 and put.json()["alias"] == "Named During Oom", put.text
    fresh = "15550007302"
    assert wa_post(a, wa_body("wamid.KV-OOM-1", sender=fresh, name="Profile During Oom")).status_code == 200
    a.wait_for(lambda: stored(a, ["wamid.KV-OOM-1"]) == {"wamid.KV-OOM-1": "done"}, what="processed")
    keys = {k for (k,) in db(a, "SELECT key FROM kv_pending")}
    assert {"wa:user_alias:" + known, "wa:profile_name:" + fresh} <= keys, keys
    assert r.cli("GET", "lucy:wa:profile_name:" + fresh) == ""  # (nil): not written

    # the rate limiter cannot record a step: the on-error policy decides
    # every message (allow: none flagged; deny: all flagged), and says so
    for lucy, sender in ((a, "15550007303"), (b, "15550007304")):
        wamids = ["wamid.KV-OOM-RL-%s-%d" % (sender, i) for i in range(4)]
        for w in wamids:
            assert wa_post(lucy, wa_body(w, sender=sender)).status_code == 200
        lucy.wait_for(lambda: set(stored(lucy, wamids).values()) == {"done"}, what="processed")
    flagged = lambda lucy, s: db(lucy, "SELECT sum(rate_limited) FROM wa_messages WHERE sender = ?", (s,))[0][0]
    assert flagged(a, "15550007303") == 0 and flagged(b, "15550007304") == 4
    assert metric(a, 'lucy_kv_rate_limit_policy_total{mode="allow"}') >= 4
    assert metric(a, 'lucy_kv_errors_total{backend="redis",kind="oom"}') >= 1
    refused = [l for l in a.log_lines() if l.get("msg") == "kv backend refused a command"]
    assert refused and refused[0]["kind"] == "oom" and "raise maxmemory" in refused[0]["remedy"], refused

    # the operator's remedy: room again, everything pending lands
    assert r.cli("CONFIG", "SET", "maxmemory", "64mb") == "OK"  # or maxmemory-policy allkeys-lru
    a.wait_for(lambda: db(a, "SELECT count(*) FROM kv_pending") == [(0,)], timeout=30,
               what="pending kv writes replayed")
    assert json.loads(r.cli("GET", "lucy:wa:user_alias:" + known))["alias"] == "Named During Oom"
    assert r.cli("GET", "lucy:wa:profile_name:" + fresh) == "Profile During Oom"
    a.wait_for(lambda: status_of(health(a), "redis:memory") == "pass", what="redis:memory pass")
    b.wait_for(lambda: b.get("/health").status_code == 200, what="ready again")
    assert contact(b, known)["alias"] == "Named During Oom"
