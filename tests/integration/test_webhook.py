"""WhatsApp webhook (issue 4, DESIGN §5, §8): the no-loss inbox.

Black-box tests of the real binary over loopback HTTP: the verification
handshake, the signature over the raw bytes, parsing of every fixture,
de-duplication (sequential and racing), contacts and aliases, rate-limit
flagging, voice notes against a local server playing Meta's Graph API media
endpoints, and the faults that motivated the issue, injected for real:
a full tmpfs, a file system that turns read-only under lucy (ext4 with
errors=remount-ro), and kill -9 in the middle of concurrent posting.

The rule every test checks in the end: a 200 means the message is on disk.
"""
import hashlib
import hmac
import http.server
import json
import os
import random
import shutil
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import FIXTURES, IS_ROOT, fill

SECRET = "test-app-secret"
VERIFY = "verify-me"
WA_FIXTURES = os.path.join(FIXTURES, "whatsapp")
FIXTURE_NAMES = ["text.json", "voice_note.json", "image_caption.json",
                 "reply_reaction_location.json", "status_read.json",
                 "batch_two_entries.json", "unicode_escaped.json"]
BASE_ENV = {"WHATSAPP_APP_SECRET": SECRET, "WHATSAPP_VERIFY_TOKEN": VERIFY,
            "LUCY_RATE_LIMIT": "1000/min"}


def fixture_bytes(name):
    with open(os.path.join(WA_FIXTURES, name), "rb") as f:
        return f.read()


def sign(body, secret=SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post(lucy, body, signature=True, header="X-Hub-Signature-256", session=None, timeout=30):
    headers = {"Content-Type": "application/json"}
    if signature is True:
        headers[header] = sign(body)
    elif signature:
        headers[header] = signature
    return (session or requests).post(lucy.url + "/webhook/whatsapp", data=body,
                                      headers=headers, timeout=timeout)


def message_body(wamid, sender="15550007777", text="hello", ts=1764460000, name="Test Sender",
                 extra=None):
    msg = {"from": sender, "id": wamid, "timestamp": str(ts), "type": "text",
           "text": {"body": text}}
    msg.update(extra or {})
    return json.dumps({"object": "whatsapp_business_account", "entry": [{
        "id": "100000000000001", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "200000000000002"},
            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
            "messages": [msg]}}]}]}).encode()


def db_query(data_dir, sql, args=()):
    """Reads lucy's store read-only (lucy may be running: WAL readers
    never block the writer)."""
    uri = "file:%s?mode=ro" % os.path.join(data_dir, "lucy.db")
    con = sqlite3.connect(uri, uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def pending(lucy):
    return db_query(lucy.data_dir, "SELECT (SELECT count(*) FROM wa_messages WHERE state='pending')"
                                   " + (SELECT count(*) FROM wa_statuses WHERE state='pending')")[0][0]


def wait_drained(lucy, timeout=30):
    lucy.wait_for(lambda: pending(lucy) == 0, timeout=timeout, what="inbox drained")


def search(lucy, q, **params):
    params["q"] = q
    r = lucy.get("/search?" + urllib.parse.urlencode(params))
    assert r.status_code == 200, r.text
    return r.json()["hits"]


def wait_search(lucy, q, wamid, timeout=20, **params):
    return lucy.wait_for(lambda: [h for h in search(lucy, q, **params) if h["id"] == wamid],
                         timeout=timeout, what="search %r finds %s" % (q, wamid))


@pytest.fixture
def lucy(start_lucy):
    return start_lucy(env=BASE_ENV)


# ---- handshake ---------------------------------------------------------------

def test_handshake_right_token(lucy):
    r = lucy.get("/webhook/whatsapp?hub.mode=subscribe&hub.verify_token=%s&hub.challenge=1158201444"
                 % VERIFY)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.text == "1158201444"


@pytest.mark.parametrize("query", [
    "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
    "hub.mode=subscribe&hub.challenge=1",
    "hub.mode=unsubscribe&hub.verify_token=%s&hub.challenge=1" % VERIFY,
    "hub.mode=subscribe&hub.verify_token=%s" % VERIFY,
])
def test_handshake_refused(lucy, query):
    r = lucy.get("/webhook/whatsapp?" + query)
    assert r.status_code == 403
    assert r.json()["error_type"] == "forbidden"
    assert "1" not in r.text.split("message")[0]


# ---- signature ---------------------------------------------------------------

def test_signature_right_wrong_missing(lucy):
    body = fixture_bytes("text.json")
    bad = sign(body, "other-secret")
    for sig, header in [(bad, "X-Hub-Signature-256"), (None, "X-Hub-Signature-256"),
                        ("sha256=" + "0" * 64, "X-Hub-Signature-256"),
                        (sign(body).replace("sha256=", "sha1="), "X-Hub-Signature-256"),
                        (sign(body), "X-Hub-Signature")]:
        r = post(lucy, body, signature=sig if sig else None, header=header)
        assert r.status_code == 401, (sig, r.text)
        assert r.json()["error_type"] == "unauthorized"
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_inbox_bodies")[0][0] == 0
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_messages")[0][0] == 0
    # nothing about the body is logged
    assert "invoice" not in lucy.log_text()
    assert "wamid.TEXT0001" not in lucy.log_text()

    r = post(lucy, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "messages": 1, "statuses": 0, "duplicates": 0}
    metrics = lucy.get("/metrics").text
    assert 'lucy_whatsapp_inbox_rejected_total{reason="signature_invalid"} 3' in metrics
    assert 'lucy_whatsapp_inbox_rejected_total{reason="signature_missing"} 2' in metrics
    assert "lucy_whatsapp_inbox_accepted_total 1" in metrics


def test_signature_header_name_any_case(lucy):
    for i, header in enumerate(["x-hub-signature-256", "X-HUB-SIGNATURE-256", "x-Hub-Signature-256"]):
        body = message_body("wamid.CASE%d" % i)
        r = post(lucy, body, header=header)
        assert r.status_code == 200, (header, r.text)


def test_unicode_escaped_signed_over_exact_bytes(lucy):
    raw = fixture_bytes("unicode_escaped.json")
    assert not raw.endswith(b"\n") and b"\\u00e9" in raw and b"\\/" in raw
    # a server that re-serialises the JSON computes another HMAC: prove the
    # re-serialised bytes differ, and that their signature is refused
    again = json.dumps(json.loads(raw), separators=(",", ":"), ensure_ascii=False).encode()
    assert again != raw
    r = post(lucy, again, signature=sign(raw))
    assert r.status_code == 401
    r = post(lucy, raw)
    assert r.status_code == 200, r.text
    stored = db_query(lucy.data_dir, "SELECT body FROM wa_inbox_bodies")
    assert stored == [(raw,)]  # the exact bytes are kept
    wait_drained(lucy)
    c = lucy.get("/contacts/15550005555").json()
    assert c["alias"] == "Ren\u00e9 \u00c5berg"
    assert c["recent_messages"][0]["text"] == "J'ai mang\u00e9 \u00e0 6/7 \U0001F600"
    wait_search(lucy, "mang\u00e9", "wamid.UNICODE0001")


def test_malformed_json_is_400_and_not_stored(lucy):
    for body in [b"{", b"not json", b"[]", b'{"object":"whatsapp_business_account"}', b""]:
        r = post(lucy, body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error_type"] == "bad_request"
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_inbox_bodies")[0][0] == 0


def test_body_limit_is_3_mib(lucy):
    big = message_body("wamid.BIG", text="x" * (3 * 1024 * 1024))
    r = post(lucy, big)
    assert r.status_code == 413
    near = message_body("wamid.NEAR", text="y" * (2 * 1024 * 1024))
    assert post(lucy, near).status_code == 200


def test_unsigned_only_on_loopback_without_secret(start_lucy):
    lucy = start_lucy(env={"WHATSAPP_VERIFY_TOKEN": VERIFY})
    assert any("unsigned webhooks are accepted" in l.get("msg", "") for l in lucy.log_lines())
    r = post(lucy, fixture_bytes("text.json"), signature=None)
    assert r.status_code == 200, r.text


# ---- every fixture -------------------------------------------------------------

def test_every_fixture_parsed_and_searchable(lucy):
    for name in FIXTURE_NAMES:
        r = post(lucy, fixture_bytes(name))
        assert r.status_code == 200, (name, r.text)
        assert r.json()["duplicates"] == 0
    wait_drained(lucy)

    rows = dict(db_query(lucy.data_dir, "SELECT wamid, type FROM wa_messages"))
    assert rows == {"wamid.TEXT0001": "text", "wamid.VOICE0001": "audio", "wamid.IMAGE0001": "image",
                    "wamid.REPLY0001": "text", "wamid.REACT0001": "reaction", "wamid.LOC0001": "location",
                    "wamid.BATCH0001": "text", "wamid.BATCH0002": "text", "wamid.UNICODE0001": "text"}
    for q, wamid in [("invoice March", "wamid.TEXT0001"), ("receipt hardware", "wamid.IMAGE0001"),
                     ("Thursday", "wamid.REPLY0001"), ("Central Station", "wamid.LOC0001"),
                     ("Stationsplein", "wamid.LOC0001"), ("reaction", "wamid.REACT0001"),
                     ("first of two", "wamid.BATCH0001"), ("second", "wamid.BATCH0002"),
                     ("voice note not downloaded", "wamid.VOICE0001"), ("mang\u00e9", "wamid.UNICODE0001")]:
        hits = wait_search(lucy, q, wamid)
        assert hits[0]["source"] == "whatsapp"
    hits = search(lucy, "invoice", source="whatsapp", contact="15550002222")
    assert [h["id"] for h in hits] == ["wamid.TEXT0001"]
    assert hits[0]["time"] == 1764460800
    assert search(lucy, "invoice", source="whatsapp", contact="15550003333") == []

    contacts = {c["id"]: c for c in lucy.get("/contacts").json()["contacts"]}
    assert contacts["15550002222"]["alias"] == "Alex Example"
    assert contacts["15550003333"]["alias"] == "Sam Sample"
    assert contacts["15550004444"]["alias"] == "Robin Placeholder"
    assert contacts["15550002222"]["messages"] == 6

    out = dict((r[0], r[1:]) for r in db_query(
        lucy.data_dir, "SELECT wamid, status, errors FROM wa_outgoing"))
    assert out["wamid.OUT0001"][0] == "read"
    assert out["wamid.OUT0002"][0] == "failed" and "131049" in out["wamid.OUT0002"][1]

    voice = contacts and lucy.get("/contacts/15550002222").json()["recent_messages"]
    v = [m for m in voice if m["wamid"] == "wamid.VOICE0001"][0]
    assert v["media"]["state"] == "not_downloaded"
    assert lucy.get("/health").json()["checks"]["whatsapp:inbox"][0]["status"] == "pass"


def test_statuses_are_counted_apart_from_messages(lucy):
    """A status-only webhook (delivery reports of the owner's messages) has
    no messages: the reply counts statuses on their own."""
    body = fixture_bytes("status_read.json")
    r = post(lucy, body)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "accepted", "messages": 0, "statuses": 2, "duplicates": 0}
    r = post(lucy, body)
    assert r.json() == {"status": "accepted", "messages": 0, "statuses": 2, "duplicates": 2}
    # one body with both: each counted in its own field
    mixed = json.loads(message_body("wamid.MIXED1"))
    mixed["entry"][0]["changes"][0]["value"]["statuses"] = [
        {"id": "wamid.OUT0003", "status": "sent", "timestamp": "1764461300", "recipient_id": "15550002222"}]
    r = post(lucy, json.dumps(mixed).encode())
    assert r.json() == {"status": "accepted", "messages": 1, "statuses": 1, "duplicates": 0}, r.text
    wait_drained(lucy)
    assert lucy.get("/contacts").json()["contacts"][0]["messages"] == 1


def test_late_delivered_never_overwrites_read(lucy):
    def status_body(status, ts):
        return json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
            "statuses": [{"id": "wamid.OUTX", "status": status, "timestamp": str(ts),
                          "recipient_id": "15550002222"}]}}]}]}).encode()
    for status, ts in [("sent", 1), ("read", 3), ("delivered", 2), ("read", 3)]:
        r = post(lucy, status_body(status, ts))
        assert r.status_code == 200
    assert r.json() == {"status": "accepted", "messages": 0, "statuses": 1, "duplicates": 1}
    wait_drained(lucy)
    assert db_query(lucy.data_dir, "SELECT status FROM wa_outgoing WHERE wamid='wamid.OUTX'") == [("read",)]
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_statuses WHERE id='wamid.OUTX'")[0][0] == 3


def test_unknown_type_kept_raw_and_counted(lucy):
    body = message_body("wamid.UNK1", extra={"type": "ephemeral", "ephemeral": {"x": 1}})
    assert post(lucy, body).status_code == 200
    wait_drained(lucy)
    raw = db_query(lucy.data_dir, "SELECT type, raw FROM wa_messages WHERE wamid='wamid.UNK1'")
    assert raw[0][0] == "ephemeral" and '"ephemeral":{"x":1}' in raw[0][1]
    assert "lucy_whatsapp_unknown_types_total 1" in lucy.get("/metrics").text


def test_user_id_without_wa_id(lucy):
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "contacts": [{"profile": {"name": "Handle Person"}, "user_id": "US.900"}],
        "messages": [{"from_user_id": "US.900", "id": "wamid.USER1", "timestamp": "1764462000",
                      "type": "text", "text": {"body": "sent from a username"}}]}}]}]}).encode()
    assert post(lucy, body).status_code == 200
    wait_drained(lucy)
    c = lucy.get("/contacts/US.900").json()
    assert c["alias"] == "Handle Person" and c["wa_id"] is None and c["user_id"] == "US.900"
    wait_search(lucy, "username", "wamid.USER1", contact="US.900")


# ---- de-duplication -------------------------------------------------------------

def test_same_wamid_twice_in_sequence(lucy):
    body = fixture_bytes("text.json")
    r1, r2 = post(lucy, body), post(lucy, body)
    assert (r1.status_code, r2.status_code) == (200, 200)
    assert r1.json()["duplicates"] == 0 and r2.json()["duplicates"] == 1
    # a redelivery with other bytes (another subscribed app) is a duplicate too
    other = message_body("wamid.TEXT0001", sender="15550002222", text="same id, new bytes")
    r3 = post(lucy, other)
    assert r3.status_code == 200 and r3.json()["duplicates"] == 1
    wait_search(lucy, "invoice", "wamid.TEXT0001")
    time.sleep(1)
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_messages WHERE wamid='wamid.TEXT0001'")[0][0] == 1
    assert db_query(lucy.data_dir, "SELECT count(*) FROM documents WHERE source='whatsapp' "
                                   "AND id='wamid.TEXT0001'")[0][0] == 1
    assert len(search(lucy, "invoice")) == 1
    assert lucy.get("/contacts/15550002222").json()["messages"] == 1


def test_wamids_differing_after_a_nul_are_refused(lucy):
    """wamid.X\u0000A and wamid.X\u0000B would be one key once bound to
    SQLite (it stops at the NUL): ids with control characters are a 400
    naming the field, and nothing of the delivery is stored."""
    for wamid in ("wamid.X\u0000A", "wamid.X\u0000B"):
        body = message_body(wamid)
        assert b"wamid.X\\u0000" in body  # JSON-escaped, signed like any body
        r = post(lucy, body)
        assert r.status_code == 400, r.text
        err = r.json()
        assert err["error_type"] == "bad_request"
        assert "messages[0].id (the wamid)" in err["message"], err
        assert "control character U+0000" in err["message"], err
    # every other id too: the sender, a contact's wa_id, a status id
    for body, field in [(message_body("wamid.C1", extra={"from": "1555\u00007777"}), "messages[0].from"),
                        (message_body("wamid.C2", sender="1555\n"), "contacts[0].wa_id")]:
        r = post(lucy, body)
        assert r.status_code == 400 and field in r.json()["message"], r.text
    status = json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "statuses": [{"id": "wamid.OUT\u0000A", "status": "read", "timestamp": "1",
                      "recipient_id": "15550002222"}]}}]}]}).encode()
    r = post(lucy, status)
    assert r.status_code == 400 and "statuses[0].id" in r.json()["message"], r.text
    for table in ("wa_inbox_bodies", "wa_messages", "wa_statuses"):
        assert db_query(lucy.data_dir, "SELECT count(*) FROM " + table)[0][0] == 0, table
    assert 'lucy_whatsapp_inbox_rejected_total{reason="bad_request"} 5' in lucy.get("/metrics").text
    # the same ids without the NUL are two ordinary messages
    for wamid in ("wamid.XA", "wamid.XB"):
        r = post(lucy, message_body(wamid))
        assert r.status_code == 200 and r.json()["duplicates"] == 0, r.text


def test_same_wamid_concurrently(lucy):
    for round_ in range(3):
        wamid = "wamid.RACE%d" % round_
        bodies = [message_body(wamid, text="racing delivery zebra%d" % round_)] * 4 + \
                 [message_body(wamid, text="racing delivery zebra%d" % round_, name="Other %d" % i)
                  for i in range(4)]
        barrier = threading.Barrier(len(bodies))
        results = [None] * len(bodies)

        def go(i):
            s = requests.Session()
            barrier.wait()
            results[i] = post(lucy, bodies[i], session=s)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert [r.status_code for r in results] == [200] * len(bodies)
        assert sum(r.json()["duplicates"] for r in results) == len(bodies) - 1
        assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_messages WHERE wamid=?", (wamid,))[0][0] == 1
        wait_search(lucy, "zebra%d" % round_, wamid)
        assert db_query(lucy.data_dir, "SELECT count(*) FROM documents WHERE source='whatsapp' AND id=?",
                        (wamid,))[0][0] == 1
        assert len(search(lucy, "zebra%d" % round_)) == 1


# ---- contacts and rate limit --------------------------------------------------------

def test_contacts_alias_user_wins(start_lucy):
    lucy = start_lucy(env=dict(BASE_ENV, LUCY_API_TOKEN="tok"))
    auth = {"Authorization": "Bearer tok"}
    assert post(lucy, fixture_bytes("text.json")).status_code == 200  # webhook needs no token
    wait_drained(lucy)
    assert lucy.get("/contacts").status_code == 401
    assert lucy.get("/contacts/15550002222", headers=auth).json()["alias_source"] == "profile"
    r = lucy.put("/contacts/15550002222", json={"alias": "Alex (plumber)"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["alias"] == "Alex (plumber)" and r.json()["alias_source"] == "user"
    # a later payload with a new profile name does not override the user's alias
    assert post(lucy, message_body("wamid.NEWNAME", sender="15550002222", name="Alexander")).status_code == 200
    wait_drained(lucy)
    c = lucy.get("/contacts/15550002222", headers=auth).json()
    assert c["alias"] == "Alex (plumber)" and c["profile_name"] == "Alexander" and c["messages"] == 2
    # clearing goes back to the profile name
    c = lucy.put("/contacts/15550002222", json={"alias": None}, headers=auth).json()
    assert c["alias"] == "Alexander" and c["alias_source"] == "profile"
    for bad in [b"{", b"[]", b'{"alias": 5}', b'{"name": "x"}']:
        r = lucy.request("PUT", "/contacts/15550002222", data=bad, headers=auth)
        assert r.status_code == 400 and r.json()["error_type"] == "bad_request"
    assert lucy.get("/contacts/nobody", headers=auth).status_code == 404
    page = lucy.get("/contacts?limit=1", headers=auth).json()
    assert len(page["contacts"]) == 1 and page["next_cursor"] is None
    assert lucy.get("/contacts?limit=0", headers=auth).status_code == 400


def test_contacts_query_parameters_checked(lucy):
    assert post(lucy, fixture_bytes("text.json")).status_code == 200
    wait_drained(lucy)
    for query, words in [("limit=0", "1 to 1000"), ("limit=1001", "1 to 1000"),
                         ("limit=abc", "1 to 1000"), ("limit=-1", "1 to 1000"),
                         ("limit=2.5", "1 to 1000"), ("limit=+5", "1 to 1000"),
                         ("cursor=" + "9" * 200, "next_cursor")]:
        r = lucy.get("/contacts?" + query)
        assert r.status_code == 400, (query, r.text)
        assert r.json()["error_type"] == "bad_request" and words in r.json()["message"], r.json()
    # an empty parameter is the same as leaving it out
    for query in ("limit=", "cursor=", "limit=&cursor="):
        r = lucy.get("/contacts?" + query)
        assert r.status_code == 200 and len(r.json()["contacts"]) == 1, (query, r.text)
    assert lucy.get("/contacts?cursor=15550002222").json() == {"contacts": [], "next_cursor": None}


def test_put_alias_of_unknown_contacts(lucy):
    """A contact comes to exist through a webhook from its number; a PUT
    for an id nobody has seen is a 404 and creates nothing, whatever the
    body and whatever the id looks like."""
    for cid in ("999", "4915112345678", "US.777", "+4915112345678", "49 151", "a;b"):
        for alias in (None, "", "Dentist"):
            r = lucy.put("/contacts/" + urllib.parse.quote(cid, safe=""), json={"alias": alias})
            assert r.status_code == 404, (cid, alias, r.text)
            err = r.json()
            assert err["error_type"] == "not_found", err
            assert "webhook from that number" in err["message"], err
        assert lucy.get("/contacts/" + urllib.parse.quote(cid, safe="")).status_code == 404
    assert lucy.get("/contacts").json()["contacts"] == []
    assert db_query(lucy.data_dir, "SELECT count(*) FROM wa_contacts")[0][0] == 0
    # once the number writes, it is a contact and takes an alias
    body = message_body("wamid.PRENAMED", sender="4915112345678", text="appointment tomorrow",
                        name="Dr. Smith")
    assert post(lucy, body).status_code == 200
    wait_drained(lucy)
    c = lucy.put("/contacts/4915112345678", json={"alias": "Dentist"}).json()
    assert (c["alias"], c["profile_name"], c["messages"], c["wa_id"]) == \
        ("Dentist", "Dr. Smith", 1, "4915112345678")
    lucy.wait_for(lambda: [h for h in search(lucy, "appointment") if h["title"] == "Dentist"],
                  what="hit titled with the alias")
    # clearing the alias of a known contact goes back to the profile name
    c = lucy.put("/contacts/4915112345678", json={"alias": None}).json()
    assert (c["alias"], c["alias_source"]) == ("Dr. Smith", "profile")
    assert [c["id"] for c in lucy.get("/contacts").json()["contacts"]] == ["4915112345678"]


def test_alias_put_retitles_search_hits(lucy):
    for i, words in enumerate(["leaking pipe kitchen", "pipe invoice attached"]):
        body = message_body("wamid.RETITLE%d" % i, sender="15550003333", text=words, name="Alex",
                            ts=1764460000 + i)
        assert post(lucy, body).status_code == 200
    wait_drained(lucy)

    # every document's title: the flat list (grouped, one sender's messages
    # of one day are one conversation)
    def titles():
        hits = search(lucy, "pipe", group=0)
        return len(hits) == 2 and sorted(h["title"] for h in hits)

    assert lucy.wait_for(titles, what="both messages indexed") == ["Alex", "Alex"]
    r = lucy.put("/contacts/15550003333", json={"alias": "Alex (plumber)"})
    assert r.status_code == 200, r.text
    lucy.wait_for(lambda: titles() == ["Alex (plumber)"] * 2, what="hits titled with the alias")
    # the documents were re-queued in the same write as the alias
    rows = db_query(lucy.data_dir, "SELECT DISTINCT title FROM documents WHERE source='whatsapp'"
                                   " AND contact='15550003333'")
    assert rows == [("Alex (plumber)",)]
    # a later message gets the alias too; clearing goes back to the profile name everywhere
    assert post(lucy, message_body("wamid.RETITLE2", sender="15550003333", text="pipe fixed",
                                   name="Alex", ts=1764460100)).status_code == 200
    wait_drained(lucy)
    lucy.wait_for(lambda: sorted(h["title"] for h in search(lucy, "pipe", group=0)) ==
                  ["Alex (plumber)"] * 3, what="the new message titled with the alias")
    assert lucy.put("/contacts/15550003333", json={"alias": None}).status_code == 200
    lucy.wait_for(lambda: sorted(h["title"] for h in search(lucy, "pipe", group=0)) == ["Alex"] * 3,
                  what="hits titled with the profile name again")


def test_migration_42_repairs_contacts_without_ids(start_lucy, tmp_path):
    """Contacts an older lucy created by PUT get their id as wa_id / user_id."""
    data = str(tmp_path / "data")
    lucy = start_lucy(env=BASE_ENV, data_dir=data)
    assert lucy.stop() == 0
    con = sqlite3.connect(os.path.join(data, "lucy.db"))
    with con:
        con.executemany("INSERT INTO wa_contacts (id, user_alias, first_seen_ms, updated_at_ms)"
                        " VALUES (?, ?, 1, 1)", [("999", None), ("US.5", "Old"), ("15550001", "A")])
        # As if 42 had not run (the store applies every version it has not
        # recorded).
        con.execute("DELETE FROM schema_version WHERE version = 42")
    con.close()
    lucy = start_lucy(env=BASE_ENV, data_dir=data)
    rows = db_query(data, "SELECT id, wa_id, user_id FROM wa_contacts ORDER BY id")
    assert rows == [("15550001", "15550001", None), ("999", "999", None), ("US.5", None, "US.5")]


def test_rate_limit_flags_never_drops(start_lucy):
    lucy = start_lucy(env=dict(BASE_ENV, LUCY_RATE_LIMIT="3/min"))
    for i in range(8):
        assert post(lucy, message_body("wamid.RL%d" % i, sender="15550008888", ts=1764460000 + i,
                                       text="flood word%d" % i)).status_code == 200
    assert post(lucy, message_body("wamid.RLother", sender="15550009999")).status_code == 200
    wait_drained(lucy)
    msgs = lucy.get("/contacts/15550008888").json()["recent_messages"]
    assert len(msgs) == 8 and all(m["state"] == "done" for m in msgs)
    assert sum(m["rate_limited"] for m in msgs) == 5
    assert lucy.get("/contacts/15550009999").json()["recent_messages"][0]["rate_limited"] is False
    wait_search(lucy, "word7", "wamid.RL7")  # flagged messages are still indexed
    assert "lucy_whatsapp_rate_limited_total 5" in lucy.get("/metrics").text


# ---- voice notes: a local server playing Meta's Graph API media endpoints -----

class GraphServer:
    """GET /v24.0/<media-id> -> {"url","mime_type","sha256","file_size","id"}
    (or 401 for a bad token / media id UNAUTH, a wrong sha256 for BADSHA),
    GET /files/<media-id> -> the bytes, bearer token required."""

    def __init__(self, token, audio):
        self.token, self.audio = token, audio
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.requests.append((self.path, self.headers.get("Authorization")))
                if self.headers.get("Authorization") != "Bearer " + outer.token:
                    return self.reply(401, b'{"error":{"message":"Invalid OAuth access token","code":190}}')
                parts = self.path.strip("/").split("/")
                if parts[0] == "v24.0" and len(parts) == 2:
                    media_id = parts[1]
                    if media_id == "UNAUTH":
                        return self.reply(401, b'{"error":{"message":"expired","code":190}}')
                    sha = hashlib.sha256(outer.audio).hexdigest()
                    if media_id == "BADSHA":
                        sha = hashlib.sha256(b"something else").hexdigest()
                    doc = {"url": "http://127.0.0.1:%d/files/%s?sig=abc" % (outer.port, media_id),
                           "mime_type": "audio/ogg; codecs=opus", "sha256": sha,
                           "file_size": len(outer.audio), "id": media_id,
                           "messaging_product": "whatsapp"}
                    return self.reply(200, json.dumps(doc).encode(), "application/json")
                if parts[0] == "files":
                    return self.reply(200, outer.audio, "audio/ogg")
                return self.reply(404, b"{}")

            def reply(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def voice_body(wamid, media_id, sender="15550006666"):
    return message_body(wamid, sender=sender, extra={
        "type": "audio", "text": None,
        "audio": {"mime_type": "audio/ogg; codecs=opus", "sha256": "00" * 32, "id": media_id,
                  "voice": True}})


def test_voice_notes_graph_api(start_lucy):
    audio_path = os.path.join(FIXTURES, "audio", "cards-001.ogg")
    with open(audio_path, "rb") as f:
        audio = f.read()
    graph = GraphServer("graph-token", audio)
    try:
        lucy = start_lucy(env=dict(BASE_ENV, WHATSAPP_ACCESS_TOKEN="graph-token",
                                   WHATSAPP_GRAPH_URL="http://127.0.0.1:%d/v24.0" % graph.port,
                                   LUCY_ASR_ENGINE="pocketsphinx"))
        for wamid, media_id in [("wamid.VGOOD", "GOOD"), ("wamid.VBADSHA", "BADSHA"),
                                ("wamid.VUNAUTH", "UNAUTH")]:
            assert post(lucy, voice_body(wamid, media_id)).status_code == 200

        def media():
            msgs = lucy.get("/contacts/15550006666").json()["recent_messages"]
            return {m["wamid"]: m.get("media") for m in msgs}

        def settled():
            m = media()
            return len(m) == 3 and all(v and v["state"] not in ("pending", "downloaded") for v in m.values()) and m

        m = lucy.wait_for(settled, timeout=120, what="voice notes settled")
        assert m["wamid.VGOOD"]["state"] == "transcribed", m
        transcript = m["wamid.VGOOD"]["transcript"]
        assert transcript
        assert m["wamid.VBADSHA"] == {"state": "failed", "error_type": "sha256_mismatch", "transcript": None}
        assert m["wamid.VUNAUTH"]["state"] == "failed"
        assert m["wamid.VUNAUTH"]["error_type"] == "graph_unauthorized"
        # the messages themselves are stored and searchable either way
        msgs = lucy.get("/contacts/15550006666").json()["recent_messages"]
        assert {x["wamid"] for x in msgs if x["state"] == "done"} == {"wamid.VGOOD", "wamid.VBADSHA",
                                                                      "wamid.VUNAUTH"}
        wait_search(lucy, "voice note", "wamid.VBADSHA")
        word = transcript.split()[0]
        hit = wait_search(lucy, word, "wamid.VGOOD")[0]
        assert "voice note" in hit["snippet"]
        # the file is stored under DATA_DIR/media by its hash, byte for byte
        stored = os.path.join(lucy.data_dir, "media", hashlib.sha256(audio).hexdigest() + ".ogg")
        with open(stored, "rb") as f:
            assert f.read() == audio
        assert len(os.listdir(os.path.join(lucy.data_dir, "media"))) == 1
        assert os.listdir(os.path.join(lucy.data_dir, "tmp")) == [] or \
            all(not n.startswith("wa-media") for n in os.listdir(os.path.join(lucy.data_dir, "tmp")))
        # the bearer token went to both endpoints; it is never logged
        assert all(auth == "Bearer graph-token" for _, auth in graph.requests)
        assert any(p.startswith("/files/GOOD") for p, _ in graph.requests)
        assert "graph-token" not in lucy.log_text() and "sig=abc" not in lucy.log_text()
        assert 'lucy_whatsapp_media_total{outcome="failed"} 2' in lucy.get("/metrics").text
    finally:
        graph.close()


# ---- faults: disk full, read-only, kill -9 -------------------------------------------

class Poster:
    """Posts signed bodies from several threads and remembers every answer."""

    def __init__(self, lucy, n, prefix, threads=8):
        self.lucy = lucy
        self.bodies = {"wamid.%s%04d" % (prefix, i):
                       message_body("wamid.%s%04d" % (prefix, i), sender="1555%07d" % (i % 50),
                                    text="durable message %s number %d" % (prefix, i), ts=1764460000 + i)
                       for i in range(n)}
        self.answers = {w: [] for w in self.bodies}  # wamid -> [(status, retry_after)]
        self.threads = threads
        self.sent = 0
        self.lock = threading.Lock()

    def post_all(self, wamids, on_progress=None):
        queue = list(wamids)

        def work():
            s = requests.Session()
            while True:
                with self.lock:
                    if not queue:
                        return
                    w = queue.pop(0)
                try:
                    r = post(self.lucy, self.bodies[w], session=s, timeout=60)
                    answer = (r.status_code, r.headers.get("Retry-After"), r.text)
                except requests.RequestException as e:
                    answer = ("error", None, str(e))
                with self.lock:
                    self.answers[w].append(answer)
                    self.sent += 1
                if on_progress:
                    on_progress(self.sent)

        ts = [threading.Thread(target=work) for _ in range(self.threads)]
        [t.start() for t in ts]
        [t.join() for t in ts]

    def acked(self):
        return {w for w, a in self.answers.items() if any(x[0] == 200 for x in a)}

    def not_acked(self):
        return [w for w, a in self.answers.items() if not any(x[0] == 200 for x in a)]

    def check_refusals(self):
        """Every non-200 was 503 or 507 with Retry-After."""
        bad = [(w, a) for w, answers in self.answers.items() for a in answers
               if a[0] != 200 and not (a[0] in (503, 507) and a[1] and int(a[1]) > 0)]
        assert not bad, bad[:5]
        refused = [a for answers in self.answers.values() for a in answers if a[0] != 200]
        for a in refused[:20]:
            assert json.loads(a[2])["error_type"] in ("disk_full", "dependency_unavailable")
        return len(refused)

    def retry_until_accepted(self, timeout=90):
        """Like Meta: every delivery without a 200 is sent again until it gets one."""
        deadline = time.time() + timeout
        while self.not_acked() and time.time() < deadline:
            self.post_all(self.not_acked())
            if self.not_acked():
                time.sleep(0.2)
        assert not self.not_acked(), "%d never accepted" % len(self.not_acked())


def stored_counts(data_dir):
    return dict(db_query(data_dir, "SELECT wamid, count(*) FROM wa_messages GROUP BY wamid"))


def test_disk_full_for_real(start_lucy, tmpfs):
    mnt = tmpfs("12m")
    data = os.path.join(mnt, "data")
    lucy = start_lucy(env=dict(BASE_ENV, LUCY_DISK_RESERVE_MB="1", LUCY_DISK_CRITICAL_MB="1",
                               LUCY_DISK_WARN_MB="2"), data_dir=data)
    poster = Poster(lucy, 1000, "FULL")
    # The filler keeps taking whatever space appears (lucy releases its
    # reserve when the disk turns critical), so the disk stays full for the
    # rest of the posts instead of depending on timing.
    stop = threading.Event()
    filler = {"path": os.path.join(mnt, "filler")}

    def hog():
        with open(filler["path"], "wb") as f:
            chunk = b"\0" * 65536
            while not stop.is_set():
                try:
                    f.write(chunk)
                    f.flush()
                except OSError:
                    time.sleep(0.01)

    def progress(n):
        if n == 150 and "thread" not in filler:
            filler["thread"] = threading.Thread(target=hog, daemon=True)
            filler["thread"].start()

    poster.post_all(list(poster.bodies), on_progress=progress)
    refused = poster.check_refusals()
    assert refused > 0, "the disk never filled up: the test proved nothing"
    print("disk full: %d acknowledged, %d refusals before space came back" % (len(poster.acked()), refused))
    # no 200 for a message that is missing: every acknowledged one is on disk now, while full
    counts = stored_counts(data)
    missing = [w for w in poster.acked() if counts.get(w) != 1]
    assert not missing, missing[:5]
    assert lucy.get("/health/live").status_code == 200

    stop.set()
    filler["thread"].join()
    os.unlink(filler["path"])  # space comes back; no restart
    poster.retry_until_accepted()
    poster.check_refusals()
    wait_drained(lucy, timeout=60)
    rc = lucy.stop()
    assert rc == 0, lucy.log_text()[-3000:]
    counts = stored_counts(data)
    assert set(counts) == set(poster.bodies) and set(counts.values()) == {1}
    assert db_query(data, "SELECT count(*) FROM wa_messages WHERE state != 'done'")[0][0] == 0
    docs = db_query(data, "SELECT count(*), count(DISTINCT id) FROM documents WHERE source='whatsapp'")[0]
    assert docs == (1000, 1000)


def ext4_loop(tmp_path):
    """A small ext4 file system on a loop device that turns read-only on an
    error (errors=remount-ro), the way real disks do."""
    if not IS_ROOT:
        pytest.skip("needs root to mount a loop device (CI runs as root)")
    for tool in ("mkfs.ext4", "losetup", "e2fsck"):
        if not shutil.which(tool):
            pytest.skip("%s is not installed" % tool)
    img = str(tmp_path / "ext4.img")
    mnt = str(tmp_path / "ext4")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(64 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", img], check=True)
    r = subprocess.run(["mount", "-o", "loop,errors=remount-ro", img, mnt], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a loop device here: " + r.stderr.strip())
    return img, mnt


def test_store_turns_read_only_mid_run(start_lucy, tmp_path):
    """tmpfs cannot be remounted read-only while lucy holds its database open
    for writing (the kernel answers EBUSY), so the file system under lucy is
    ext4 on a loop device, made read-only for real by an ext4 error
    (/sys/fs/ext4/<dev>/trigger_fs_error with errors=remount-ro), then
    checked and mounted read-write again."""
    img, mnt = ext4_loop(tmp_path)
    try:
        dev = os.path.basename(os.path.realpath(subprocess.check_output(
            ["findmnt", "-no", "SOURCE", mnt], text=True).strip()))
        trigger = "/sys/fs/ext4/%s/trigger_fs_error" % dev
        if not os.path.exists(trigger):
            pytest.skip("this kernel has no %s" % trigger)
        data = os.path.join(mnt, "data")
        lucy = start_lucy(env=BASE_ENV, data_dir=data)
        poster = Poster(lucy, 1000, "RO")
        fired = {}

        def progress(n):
            if n == 300 and not fired:
                fired["at"] = n
                with open(trigger, "w") as f:
                    f.write("lucy test: store made read-only\n")

        poster.post_all(list(poster.bodies), on_progress=progress)
        assert fired
        refused = poster.check_refusals()
        assert refused > 0, "the store never became read-only: the test proved nothing"
        print("read-only: %d acknowledged, %d refusals" % (len(poster.acked()), refused))
        lucy.stop()
        # the operator repairs the file system and lucy starts again on it
        subprocess.run(["umount", mnt], check=True)
        subprocess.run(["e2fsck", "-fy", img], capture_output=True)
        subprocess.run(["mount", "-o", "loop,errors=remount-ro", img, mnt], check=True)
        counts = stored_counts(data)
        missing = [w for w in poster.acked() if counts.get(w) != 1]
        assert not missing, "acknowledged but lost: %s" % missing[:5]

        lucy = start_lucy(env=BASE_ENV, data_dir=data)
        poster.lucy = lucy
        poster.retry_until_accepted()
        poster.check_refusals()
        wait_drained(lucy, timeout=60)
        assert lucy.stop() == 0
        counts = stored_counts(data)
        assert set(counts) == set(poster.bodies) and set(counts.values()) == {1}
    finally:
        subprocess.run(["umount", "-l", mnt], check=False)


def test_kill9_during_concurrent_posting(start_lucy, tmp_path):
    data = str(tmp_path / "crash-data")
    lucy = start_lucy(env=BASE_ENV, data_dir=data)
    poster = Poster(lucy, 600, "CRASH", threads=8)
    kill_at = random.randint(100, 400)
    killed = {}

    def progress(n):
        if n >= kill_at and not killed:
            killed["at"] = n
            lucy.kill9()

    poster.post_all(list(poster.bodies), on_progress=progress)
    assert killed
    acked = poster.acked()
    assert acked and len(acked) < len(poster.bodies)
    # every non-200 is a refusal or a dropped connection, never a 200
    counts = stored_counts(data)
    missing = [w for w in acked if counts.get(w) != 1]
    assert not missing, "acknowledged but lost: %s" % missing[:5]

    lucy2 = start_lucy(env=BASE_ENV, data_dir=data)
    wait_drained(lucy2, timeout=60)  # pending items from before the crash are processed
    docs = {r[0] for r in db_query(data, "SELECT id FROM documents WHERE source='whatsapp'")}
    assert acked <= docs
    poster.lucy = lucy2
    poster.retry_until_accepted()
    wait_drained(lucy2, timeout=60)
    assert lucy2.stop() == 0
    counts = stored_counts(data)
    assert set(counts) == set(poster.bodies) and set(counts.values()) == {1}
    assert db_query(data, "SELECT count(*) FROM wa_messages WHERE state != 'done'")[0][0] == 0
    docs = db_query(data, "SELECT count(*), count(DISTINCT id) FROM documents WHERE source='whatsapp'")[0]
    assert docs == (600, 600)
