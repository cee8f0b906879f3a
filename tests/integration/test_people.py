"""People (DESIGN §12, docs/people.md): a webhook's sender becomes a person
with the phone its wa_id spells; calls of that number and its messages
share one timeline; merges, splits and aliases are journaled and undo
exactly; contacts written by release 1 become persons; the alias reaches
the other instances through the kv (Redis)."""
import json
import os
import shutil
import sqlite3

import pytest

from redis_fixture import needs_redis, redis_server  # noqa: F401 (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
ALEX = "15550002222"  # text.json, voice_note.json, reply_reaction_location.json
SAM = "15550003333"  # image_caption.json


def post_fixture(lucy, name):
    with open(os.path.join(FIXTURES, "whatsapp", name), "rb") as f:
        r = lucy.post("/webhook/whatsapp", data=f.read(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text


def person_of(lucy, q, messages=None):
    """The one person /people?q= finds, once it has `messages` messages."""
    def found():
        ps = lucy.get("/people", params={"q": q}).json()["people"]
        if len(ps) != 1:
            return None
        p = lucy.get("/people/%d" % ps[0]["id"]).json()
        return p if messages is None or p["messages"] == messages else None
    return lucy.wait_for(found, what="a person matching %s" % q)


def assert_error(r, status, error_type):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_type"] == error_type, body
    assert body.get("message"), body


def test_webhook_sender_becomes_person_with_phone(start_lucy):
    lucy = start_lucy()
    post_fixture(lucy, "text.json")
    p = person_of(lucy, ALEX, messages=1)
    idents = {(i["kind"], i["value"]) for i in p["identifiers"]}
    assert idents == {("wa_id", ALEX), ("phone", "+" + ALEX)}
    assert p["name"] == "Alex Example" and p["name_source"] == "profile_name"
    assert [(n["name"], n["source"]) for n in p["names"]] == [("Alex Example", "profile_name")]
    assert p["calls"] == 0 and p["last_contact"] == 1764460800
    # the phone finds the same person; /contacts answers as before
    assert lucy.get("/people", params={"q": "+1555000"}).json()["people"][0]["id"] == p["id"]
    c = lucy.get("/contacts/" + ALEX).json()
    assert c["alias"] == "Alex Example" and c["messages"] == 1


def add_call(data_dir, recording_id, number_e164, started_at_ms, direction="in"):
    """A call recording as the scanner will store it (schema 44), written
    while lucy is stopped, until the scanner fills recording_calls."""
    db = sqlite3.connect(os.path.join(data_dir, "lucy.db"))
    with db:
        db.execute("INSERT INTO recordings (id, size, mtime_ns, duration_s, first_seen_s, updated_at_s)"
                   " VALUES (?, 1000, ?, 61.5, 1, 1)", (recording_id, started_at_ms * 1000000))
        db.execute("INSERT INTO recording_calls (recording_id, started_at_ms, direction, number_raw,"
                   " number_e164, title, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, 1)",
                   (recording_id, started_at_ms, direction, number_e164, number_e164,
                    "Call with Alex"))
    db.close()


def test_timeline_interleaves_calls_and_messages_and_pages(start_lucy):
    lucy = start_lucy()
    for f in ("text.json", "voice_note.json", "reply_reaction_location.json"):
        post_fixture(lucy, f)
    p = person_of(lucy, ALEX, messages=5)
    data_dir = lucy.data_dir
    assert lucy.stop() == 0
    # messages at 1764460800, ...900, ...1100, ...1101, ...1102
    add_call(data_dir, "rec-a", "+" + ALEX, 1764460850000)
    add_call(data_dir, "rec-b", "+" + ALEX, 1764461101000, "out")  # same second as a message
    add_call(data_dir, "rec-other", "+15550009999", 1764461000000)  # someone else
    lucy = start_lucy(data_dir=data_dir)
    p = lucy.get("/people/%d" % p["id"]).json()
    assert p["calls"] == 2 and p["messages"] == 5
    full = lucy.get("/people/%d/timeline" % p["id"]).json()
    assert full["next_cursor"] is None
    got = [(i["kind"], i.get("recording_id") or i.get("wamid")) for i in full["items"]]
    assert got == [
        ("message", "wamid.LOC0001"),
        ("message", "wamid.REACT0001"),
        ("call", "rec-b"),
        ("message", "wamid.REPLY0001"),
        ("message", "wamid.VOICE0001"),
        ("call", "rec-a"),
        ("message", "wamid.TEXT0001"),
    ]
    call = full["items"][2]
    assert call["direction"] == "out" and call["number"] == "+" + ALEX and call["duration_s"] == 61.5
    # pages of 2 give the same 7 items, each once
    seen, cursor = [], None
    while True:
        params = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = lucy.get("/people/%d/timeline" % p["id"], params=params).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == full["items"]
    # from/to bound by time
    part = lucy.get("/people/%d/timeline" % p["id"], params={"from": "1764460850", "to": "1764461100"}).json()
    assert [i.get("recording_id") or i.get("wamid") for i in part["items"]] == [
        "wamid.REPLY0001", "wamid.VOICE0001", "rec-a"]
    for params in ({"cursor": "nonsense"}, {"limit": "0"}, {"from": "yesterday"},
                   {"from": "1764461100", "to": "1764460850"}):
        assert_error(lucy.get("/people/%d/timeline" % p["id"], params=params), 400, "bad_request")
    assert_error(lucy.get("/people/424242/timeline"), 404, "not_found")


def test_timeline_call_title_follows_the_person_as_the_recording_does(start_lucy):
    """A call's title in the timeline comes from its person at read time,
    by the rule GET /recordings/{id} uses: a rename after the scan shows."""
    lucy = start_lucy()
    post_fixture(lucy, "text.json")
    p = person_of(lucy, ALEX, messages=1)
    data_dir = lucy.data_dir
    assert lucy.stop() == 0
    rec = "ab" * 32
    add_call(data_dir, rec, "+" + ALEX, 1764460850000, "out")  # stored title "Call with Alex"
    lucy = start_lucy(data_dir=data_dir)

    def titles():
        call = [i for i in lucy.get("/people/%d/timeline" % p["id"]).json()["items"]
                if i["kind"] == "call"][0]
        return call["title"], lucy.get("/recordings/" + rec).json()["title"]
    timeline, recording = titles()
    assert timeline == recording and timeline.startswith("Call with Alex Example · out · "), timeline
    assert lucy.put("/people/%d" % p["id"], json={"alias": "Alex (work)"}).status_code == 200
    timeline, recording = titles()
    assert timeline == recording and timeline.startswith("Call with Alex (work) · out · "), timeline


def test_contacts_carry_their_person_with_its_name(start_lucy):
    """GET /contacts and /contacts/{id} name the sender's person {id, name}
    (as a recording's call does), so the Messages view shows the name the
    People view shows, not the WhatsApp profile name."""
    lucy = start_lucy()
    post_fixture(lucy, "text.json")
    p = person_of(lucy, ALEX, messages=1)
    data_dir = lucy.data_dir
    assert lucy.stop() == 0
    # a call's contact name for the same phone, as the scanner records it:
    # a better source than the profile name (DESIGN §12)
    db = sqlite3.connect(os.path.join(data_dir, "lucy.db"))
    with db:
        ident = db.execute("SELECT id FROM people_identifiers WHERE kind = 'phone' AND value = ?",
                           ("+" + ALEX,)).fetchone()[0]
        db.execute("INSERT INTO people_names (person, identifier, name, source, first_seen_ms,"
                   " last_seen_ms) VALUES (?, ?, 'Alex Doe', 'contact_name', 1, 1)", (p["id"], ident))
    db.close()
    lucy = start_lucy(data_dir=data_dir)
    assert lucy.get("/people/%d" % p["id"]).json()["name"] == "Alex Doe"
    one = lucy.get("/contacts/" + ALEX).json()
    assert one["person"] == {"id": p["id"], "name": "Alex Doe"}, one
    assert one["profile_name"] == "Alex Example"
    listed = [c for c in lucy.get("/contacts").json()["contacts"] if c["id"] == ALEX][0]
    assert listed["person"] == {"id": p["id"], "name": "Alex Doe"}, listed


def test_list_items_carry_counts_and_last_contact(start_lucy):
    """GET /people's items have calls, messages and last_contact (counted in
    the list's own query: the UI asks nothing per row), equal to GET
    /people/{id}'s, on every page and with q."""
    lucy = start_lucy()
    for f in ("text.json", "voice_note.json", "image_caption.json"):
        post_fixture(lucy, f)
    alex = person_of(lucy, ALEX, messages=2)
    person_of(lucy, "15550003333", messages=1)
    data_dir = lucy.data_dir
    assert lucy.stop() == 0
    add_call(data_dir, "rec-a", "+" + ALEX, 1764470000000)  # after Alex's messages (..0800, ..0900)
    add_call(data_dir, "rec-nobody", "+15550009999", 1764480000000)  # a number of nobody's
    lucy = start_lucy(data_dir=data_dir)
    listed = lucy.get("/people", params={"limit": 500}).json()["people"]
    assert len(listed) == 2
    for p in listed:
        full = lucy.get("/people/%d" % p["id"]).json()
        assert (p["calls"], p["messages"], p["last_contact"]) == (
            full["calls"], full["messages"], full["last_contact"]), p
    a = next(p for p in listed if p["id"] == alex["id"])
    assert (a["calls"], a["messages"], a["last_contact"]) == (1, 2, 1764470000)
    sam = next(p for p in listed if p["id"] != alex["id"])
    assert (sam["calls"], sam["messages"], sam["last_contact"]) == (0, 1, 1764461000)
    # pages of one and a filtered list carry them too
    page = lucy.get("/people", params={"limit": 1}).json()
    assert page["people"][0] == listed[0] and page["next_cursor"] == listed[0]["id"]
    page = lucy.get("/people", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert page["people"] == listed[1:] and page["next_cursor"] is None
    assert lucy.get("/people", params={"q": "Sam"}).json()["people"] == [sam]


def test_phone_seen_first_links_wa_id_automatically_and_undoably(start_lucy):
    lucy = start_lucy()
    data_dir = lucy.data_dir
    assert lucy.stop() == 0
    # a person known by its phone only, as a call's observation leaves it
    db = sqlite3.connect(os.path.join(data_dir, "lucy.db"))
    with db:
        db.execute("INSERT INTO people (id, created_at_ms) VALUES (7, 1000)")
        db.execute("INSERT INTO people_identifiers (person, kind, value, source, first_seen_ms)"
                   " VALUES (7, 'phone', ?, 'call_recording', 1000)", ("+" + SAM,))
        db.execute("INSERT INTO people_names (person, identifier, name, source, first_seen_ms,"
                   " last_seen_ms) VALUES (7, 1, 'Sam from the call', 'contact_name', 1000, 1000)")
    db.close()
    lucy = start_lucy(data_dir=data_dir)
    before = lucy.get("/people/7").json()
    post_fixture(lucy, "image_caption.json")
    p = person_of(lucy, SAM, messages=1)
    assert p["id"] == 7
    assert {(i["kind"], i["value"]) for i in p["identifiers"]} == {("phone", "+" + SAM), ("wa_id", SAM)}
    assert p["name"] == "Sam from the call" and p["name_source"] == "contact_name"  # contact > profile
    hist = lucy.get("/people/7/history").json()["history"]
    assert len(hist) == 1 and hist[0]["op"] == "merge" and hist[0]["auto"] is True
    other = hist[0]["other"]
    r = lucy.post("/people/history/%d/undo" % hist[0]["seq"])
    assert r.status_code == 200, r.text
    assert lucy.get("/people/7").json() == before
    split_off = lucy.get("/people/%d" % other).json()
    assert [i["kind"] for i in split_off["identifiers"]] == ["wa_id"]
    assert split_off["name"] == "Sam Sample" and split_off["messages"] == 1
    # a later message from that wa_id stays with the person it now belongs to
    assert_error(lucy.post("/people/history/%d/undo" % hist[0]["seq"]), 409, "conflict")


def test_merge_split_alias_and_exact_undo(start_lucy):
    lucy = start_lucy()
    for f in ("text.json", "image_caption.json"):
        post_fixture(lucy, f)
    a = person_of(lucy, ALEX, messages=1)
    b = person_of(lucy, SAM, messages=1)
    a_before, b_before = a, b
    r = lucy.post("/people/%d/merge" % a["id"], json={"other": b["id"]})
    assert r.status_code == 200, r.text
    merged = r.json()
    assert len(merged["identifiers"]) == 4 and merged["messages"] == 2
    assert_error(lucy.get("/people/%d" % b["id"]), 404, "not_found")
    merge_seq = merged["history_seq"]
    # an alias after the merge: the merge cannot be undone before it
    r = lucy.put("/people/%d" % a["id"], json={"alias": "Alex & Sam"})
    assert r.status_code == 200 and r.json()["name"] == "Alex & Sam", r.text
    alias_seq = r.json()["history_seq"]
    r = lucy.post("/people/history/%d/undo" % merge_seq)
    assert_error(r, 409, "conflict")
    assert str(alias_seq) in r.json()["message"]
    assert lucy.post("/people/history/%d/undo" % alias_seq).status_code == 200
    r = lucy.post("/people/history/%d/undo" % merge_seq)
    assert r.status_code == 200, r.text
    assert lucy.get("/people/%d" % a["id"]).json() == a_before
    assert lucy.get("/people/%d" % b["id"]).json() == b_before
    assert_error(lucy.post("/people/history/%d/undo" % merge_seq), 409, "conflict")
    hist = lucy.get("/people/%d/history" % a["id"]).json()["history"]
    assert [(h["op"], h["undone_at_ms"] is not None) for h in hist] == [("alias", True), ("merge", True)]

    # split: the phone leaves Alex, with nothing else; undo puts it back
    r = lucy.post("/people/%d/split" % a["id"], json={"identifier": {"kind": "phone", "value": "+" + ALEX}})
    assert r.status_code == 200, r.text
    s = r.json()
    assert [i["kind"] for i in s["identifiers"]] == ["wa_id"] and s["messages"] == 1
    assert [i["kind"] for i in s["split_into"]["identifiers"]] == ["phone"]
    assert s["split_into"]["name"] == "+1 555-000-2222" and s["split_into"]["name_source"] == "phone"
    assert_error(lucy.post("/people/%d/split" % s["split_into"]["id"],
                           json={"identifier": {"kind": "phone", "value": "+" + ALEX}}), 409, "conflict")
    assert lucy.post("/people/history/%d/undo" % s["history_seq"]).status_code == 200
    assert lucy.get("/people/%d" % a["id"]).json() == a_before

    # a cleared alias goes back to the profile name
    assert lucy.put("/people/%d" % a["id"], json={"alias": "Al"}).json()["name"] == "Al"
    assert lucy.put("/people/%d" % a["id"], json={"alias": None}).json()["name"] == "Alex Example"


def test_bad_ids_and_bodies(start_lucy):
    lucy = start_lucy()
    post_fixture(lucy, "text.json")
    a = person_of(lucy, ALEX, messages=1)
    pid = a["id"]
    for path in ("/people/999", "/people/abc", "/people/0", "/people/999/history", "/people/-1/timeline"):
        assert_error(lucy.get(path), 404, "not_found")
    assert_error(lucy.put("/people/999", json={"alias": "x"}), 404, "not_found")
    assert_error(lucy.post("/people/%d/merge" % pid, json={"other": 999}), 404, "not_found")
    assert_error(lucy.post("/people/999/merge", json={"other": pid}), 404, "not_found")
    assert_error(lucy.post("/people/history/999/undo"), 404, "not_found")
    assert_error(lucy.post("/people/history/x/undo"), 404, "not_found")
    assert_error(lucy.post("/people/%d/split" % pid, json={"identifier": {"kind": "wa_id", "value": "1"}}),
                 404, "not_found")
    bad = [
        ("post", "/people/%d/merge" % pid, b"not json"),
        ("post", "/people/%d/merge" % pid, json.dumps({"other": str(pid)}).encode()),
        ("post", "/people/%d/merge" % pid, json.dumps({"other": pid}).encode()),  # itself
        ("post", "/people/%d/merge" % pid, json.dumps([1]).encode()),
        ("post", "/people/%d/split" % pid, json.dumps({"identifier": {"kind": "email", "value": "a@b"}}).encode()),
        ("post", "/people/%d/split" % pid, json.dumps({"identifier": {"kind": "phone", "value": "0155"}}).encode()),
        ("post", "/people/%d/split" % pid, json.dumps({}).encode()),
        ("put", "/people/%d" % pid, json.dumps({"alias": "bell\u0007"}).encode()),
        ("put", "/people/%d" % pid, json.dumps({"alias": "x" * 201}).encode()),
        ("put", "/people/%d" % pid, json.dumps({"alias": 5}).encode()),
        ("put", "/people/%d" % pid, json.dumps({"nick": "x"}).encode()),
    ]
    for method, path, body in bad:
        r = lucy.request(method.upper(), path, data=body, headers={"Content-Type": "application/json"})
        assert_error(r, 400, "bad_request")
    for params in ({"limit": "0"}, {"limit": "501"}, {"cursor": "x"}, {"q": "x" * 201}):
        assert_error(lucy.get("/people", params=params), 400, "bad_request")
    # nothing changed
    assert lucy.get("/people/%d" % pid).json() == a
    assert lucy.get("/people/%d/history" % pid).json()["history"] == []


def test_release_1_data_dir_opens_with_contacts_as_people(start_lucy, tmp_path):
    data_dir = str(tmp_path / "data")
    os.makedirs(data_dir)
    shutil.copy(os.path.join(FIXTURES, "datadir-release-1", "lucy.db"), data_dir)
    lucy = start_lucy(data_dir=data_dir)
    contacts = {c["id"]: c for c in lucy.get("/contacts").json()["contacts"]}
    assert set(contacts) == {ALEX, SAM, "15550004444", "15550005555"}
    assert contacts[ALEX]["alias"] == "Alex (work)" and contacts[ALEX]["alias_source"] == "user"
    assert contacts[ALEX]["messages"] == 6
    assert contacts["15550005555"]["alias"] == "Ren\u00e9 \u00c5berg"
    recent = lucy.get("/contacts/" + ALEX).json()["recent_messages"]
    assert {m["wamid"] for m in recent} == {"wamid.TEXT0001", "wamid.VOICE0001", "wamid.REPLY0001",
                                             "wamid.REACT0001", "wamid.LOC0001", "wamid.BATCH0001"}
    hits = lucy.get("/search", params={"q": "invoice"}).json()
    assert [h["id"] for h in hits["results" if "results" in hits else "hits"]] == ["wamid.TEXT0001"]
    # every migration since (55: recordings' segments lose their titles)
    # keeps the messages' documents as they were, titles included
    import sqlite3
    db = sqlite3.connect(os.path.join(data_dir, "lucy.db"))
    docs = db.execute("SELECT count(*), count(nullif(title, '')) FROM documents"
                      " WHERE source = 'whatsapp' AND deleted = 0").fetchone()
    db.close()
    assert docs == (9, 9), docs

    people = lucy.wait_for(lambda: (lambda ps: ps if len(ps) == 4 else None)(
        lucy.get("/people").json()["people"]), what="4 persons")
    by_wa = {next(i["value"] for i in p["identifiers"] if i["kind"] == "wa_id"): p for p in people}
    assert set(by_wa) == set(contacts)
    alex = lucy.get("/people/%d" % by_wa[ALEX]["id"]).json()
    assert alex["name"] == "Alex (work)" and alex["name_source"] == "alias"
    assert {(n["name"], n["source"]) for n in alex["names"]} == {("Alex (work)", "alias"),
                                                                 ("Alex Example", "profile_name")}
    assert {(i["kind"], i["value"]) for i in alex["identifiers"]} == {("wa_id", ALEX), ("phone", "+" + ALEX)}
    assert alex["messages"] == 6 and alex["last_contact"] == 1764461300
    assert by_wa["15550005555"]["name"] == "Ren\u00e9 \u00c5berg"
    # a restart does not make them twice
    assert lucy.stop() == 0
    lucy = start_lucy(data_dir=data_dir)
    post_fixture(lucy, "unicode_escaped.json")  # a duplicate: acknowledged, nothing new
    assert len(lucy.get("/people").json()["people"]) == 4


@needs_redis
def test_alias_reaches_other_instances_through_redis(start_lucy, redis_server):
    r = redis_server()
    lucy = start_lucy(env={"REDIS_URL": r.url})
    post_fixture(lucy, "text.json")
    p = person_of(lucy, ALEX, messages=1)
    resp = lucy.put("/people/%d" % p["id"], json={"alias": "Alex via people"})
    assert resp.status_code == 200, resp.text
    stored = json.loads(r.cli("GET", "lucy:wa:user_alias:" + ALEX))
    assert stored["alias"] == "Alex via people"
    # the older face answers with it, here and on a second instance on the same Redis
    assert lucy.get("/contacts/" + ALEX).json()["alias"] == "Alex via people"
    other = start_lucy(env={"REDIS_URL": r.url})
    assert other.get("/contacts/" + ALEX).json()["alias"] == "Alex via people"
    # PUT /contacts still works through the kv as before
    assert lucy.put("/contacts/" + ALEX, json={"alias": "Alex via contacts"}).status_code == 200
    assert json.loads(r.cli("GET", "lucy:wa:user_alias:" + ALEX))["alias"] == "Alex via contacts"
    assert other.get("/contacts/" + ALEX).json()["alias"] == "Alex via contacts"


def test_a_recorded_call_and_a_webhook_from_one_number_are_one_person(start_lucy, tmp_path):
    """DESIGN §12's example end to end: a call named after +1 415-555-0123
    (scanned for real) and a WhatsApp message from wa_id 14155550123 are one
    person; the recording names the person; the timeline interleaves them."""
    from conftest import FIXTURES
    rec = tmp_path / "rec"
    rec.mkdir()
    call = rec / "+14155550123_20240301-101500_incoming.m4a"
    shutil.copyfile(os.path.join(FIXTURES, "audio", "goforward.m4a"), str(call))
    old = 1700000000
    os.utime(str(call), (old, old))
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(rec), "LUCY_SCAN_SETTLE_S": "0"})
    recs = lucy.wait_for(lambda: lucy.get("/recordings").json()["recordings"] or None,
                         what="the call scanned")
    body = json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "2"},
            "contacts": [{"profile": {"name": "John Smith"}, "wa_id": "14155550123"}],
            "messages": [{"from": "14155550123", "id": "wamid.ONEPERSON1", "timestamp": "1709300000",
                          "type": "text", "text": {"body": "about the invoice"}}]}}]}]})
    r = lucy.post("/webhook/whatsapp", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    people = lucy.wait_for(lambda: (lambda ps: ps if any(
        {i["kind"] for i in p.get("identifiers", [])} >= {"phone", "wa_id"} for p in ps) else None)(
        [lucy.get("/people/%d" % p["id"]).json() for p in lucy.get("/people").json()["people"]]),
        what="one person with the phone and the wa_id")
    person = [p for p in people if {i["kind"] for i in p["identifiers"]} >= {"phone", "wa_id"}][0]
    assert len([p for p in people if any(i["value"] == "+14155550123" for i in p["identifiers"])]) == 1
    assert person["name"] == "John Smith"
    rec_doc = lucy.get("/recordings/" + recs[0]["id"]).json()
    assert rec_doc["call"]["number"]["e164"] == "+14155550123"
    assert rec_doc["call"]["direction"] == "in"
    assert rec_doc["call"]["person"] == {"id": person["id"], "name": "John Smith"}
    # The title comes from the person (the file only has the number), and
    # the user's alias wins over both (DESIGN §12)
    assert rec_doc["title"].startswith("Call with John Smith · in · 1 Mar 2024 10:15"), rec_doc
    assert rec_doc["call"]["title"] == rec_doc["title"]
    r = lucy.put("/people/%d" % person["id"], json={"alias": "Johnny"})
    assert r.status_code == 200, r.text
    assert lucy.get("/recordings").json()["recordings"][0]["title"].startswith("Call with Johnny")
    # A search hit in the call names the call's person, as a message's does
    hits = lucy.wait_for(lambda: [h for h in lucy.get("/search", params={"q": "forward"}).json()[
        "hits"] if h["source"] == "call_recording"] or None, what="the call transcribed")
    assert hits[0]["person"] == person["id"], hits
    items = lucy.get("/people/%d/timeline" % person["id"]).json()["items"]
    assert [i["kind"] for i in items] == ["message", "call"], items  # newest first
    assert items[0]["time"] == 1709300000 and items[1]["time"] < items[0]["time"]
