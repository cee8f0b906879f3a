"""Search hits say who spoke (DESIGN §12 "Search, grouped", §13): a
stereo call built IN THE TEST from the fixtures' clips (audio_build.py, as
test_speakers.py builds it) is transcribed per channel by pocketsphinx;
a word said on the left channel only is found with speaker "me", a word
said on the right only with the call's person (the BCR-style file name
carries the number), through GET /search (grouped and flat), the MCP
`search` tool and `lucy search`. A WhatsApp message from the same number
is found with its sender's person as speaker.

Words are read back from lucy's own transcript, never assumed from the
recogniser.
"""
import json
import os
import sqlite3

from audio_build import stereo_call
from test_mcp import Session, post_fixture
from test_search import lucy_cmd
from test_speakers import CALL_NAME, LEFT, RIGHT, by_name, start, wait_transcribed, words


def word_of(segs, mine):
    """A word (6+ letters) said only in "me" segments (mine) or only in the
    others'."""
    me = set(w for s in segs if s["speaker"] == "me" for w in words(s["text"]))
    them = set(w for s in segs if s["speaker"] != "me" for w in words(s["text"]))
    own, other = (me, them) if mine else (them, me)
    return sorted(w for w in own - other if len(w) > 5 and w.isalpha())[0]


def test_search_hits_carry_the_speaker(start_lucy, tmp_path):
    d = tmp_path / "rec"
    d.mkdir()
    stereo_call(str(tmp_path), LEFT, RIGHT, str(d / CALL_NAME))
    lucy = start(start_lucy, str(d))
    post_fixture(lucy, "text.json")  # a message from the call's number
    wait_transcribed(lucy, 1)
    rec = by_name(lucy)[CALL_NAME]
    person = rec["call"]["person"]["id"]
    segs = rec["transcript"]["segments"]
    assert {s["speaker"] for s in segs} == {"me", person}, segs
    lucy.wait_for(lambda: lucy.get("/rag/stats").json()["pending_count"] == 0, timeout=60,
                  what="the segments and the message indexed")
    mine, theirs = word_of(segs, True), word_of(segs, False)

    for word, who in ((mine, "me"), (theirs, person)):
        # grouped: the card and each of its hits, as the transcript says
        body = lucy.get("/search", params={"q": word, "per_group": "50"}).json()
        card = next(h for h in body["hits"] if h["id"] == rec["id"])
        assert card["speaker"] == who, (word, card)
        assert card["hits"] and all(h["speaker"] == who for h in card["hits"]), (word, card)
        # DESIGN §5: a hit's title is the recording's (its segments carry none)
        assert card["title"] == rec["title"] and all(
            h["title"] == rec["title"] for h in card["hits"]), (rec["title"], card)
        for h in card["hits"]:
            assert segs[h["segment"]]["speaker"] == who and word in words(
                segs[h["segment"]]["text"]), (h, segs[h["segment"]])
        # flat
        flat = lucy.get("/search", params={"q": word, "group": "0"}).json()
        hits = [h for h in flat["hits"] if h["id"] == rec["id"]]
        assert hits and all(h["speaker"] == who for h in hits), (word, flat)
        assert all(h["title"] == rec["title"] for h in hits), (rec["title"], hits)

    # The MCP tool: the same speakers, valid against its outputSchema.
    s = Session(lucy)
    schemas = {t["name"]: t["outputSchema"]
               for t in s.call("tools/list", {}, "ListToolsResult")["tools"]}
    for word, who in ((mine, "me"), (theirs, person)):
        res = s.tool("search", {"query": word}, schemas)
        card = next(h for h in res["structuredContent"]["hits"] if h["id"] == rec["id"])
        assert card["speaker"] == who and all(h["speaker"] == who for h in card["hits"]), card

    # lucy search: --json as /search, and the plain list says who spoke.
    for word, who in ((mine, "me"), (theirs, person)):
        r = lucy_cmd(lucy.data_dir, "search", word, "--json")
        assert r.returncode == 0, r.stderr.decode()
        card = next(h for h in json.loads(r.stdout)["hits"] if h["id"] == rec["id"])
        assert card["speaker"] == who and all(h["speaker"] == who for h in card["hits"]), card
    r = lucy_cmd(lucy.data_dir, "search", mine)
    assert r.returncode == 0 and "said by me" in r.stdout.decode(), r
    assert rec["title"] in r.stdout.decode(), (rec["title"], r.stdout.decode())
    r = lucy_cmd(lucy.data_dir, "search", theirs, "--flat")
    assert r.returncode == 0 and "said by person %d" % person in r.stdout.decode(), r

    # A WhatsApp message's speaker is its sender's person.
    msg = lucy.wait_for(lambda: lucy.get("/search", params={"q": "invoice", "source": "whatsapp"})
                        .json()["hits"], timeout=30, what="the message searchable")
    assert msg and msg[0]["person"] == person and msg[0]["speaker"] == person, msg
    assert all(h["speaker"] == person for h in msg[0]["hits"]), msg


def test_a_hit_title_follows_the_person_s_name(start_lucy, tmp_path):
    """The title is read when the result is, not copied at indexing: the
    user's alias for the call's person shows in the next search."""
    d = tmp_path / "rec"
    d.mkdir()
    stereo_call(str(tmp_path), LEFT, RIGHT, str(d / CALL_NAME))
    lucy = start(start_lucy, str(d))
    wait_transcribed(lucy, 1)
    rec = by_name(lucy)[CALL_NAME]
    lucy.wait_for(lambda: lucy.get("/rag/stats").json()["pending_count"] == 0, timeout=60,
                  what="the segments indexed")
    word = word_of(rec["transcript"]["segments"], False)
    r = lucy.put("/people/%d" % rec["call"]["person"]["id"], json={"alias": "Sam Example"})
    assert r.status_code == 200, r.text
    title = lucy.get("/recordings/" + rec["id"]).json()["title"]
    assert "Sam Example" in title, title
    card = next(h for h in lucy.get("/search", params={"q": word}).json()["hits"]
                if h["id"] == rec["id"])
    assert card["title"] == title, (title, card)


def titled_like_0_1(start_lucy, tmp_path, before_55):
    """A call transcribed and indexed, then lucy stopped and its documents
    given the file name as title, as lucy 0.1.0 wrote them (worker.c at
    88ab3f7); before_55: and the store set back to before migration 55.
    lucy started again on it; returns (lucy, rec, a word "them" said)."""
    d = tmp_path / "rec"
    d.mkdir()
    stereo_call(str(tmp_path), LEFT, RIGHT, str(d / CALL_NAME))
    lucy = start(start_lucy, str(d))
    wait_transcribed(lucy, 1)
    lucy.wait_for(lambda: lucy.get("/rag/stats").json()["pending_count"] == 0, timeout=60,
                  what="the segments indexed")
    rec = by_name(lucy)[CALL_NAME]
    word = word_of(rec["transcript"]["segments"], False)
    data_dir = lucy.data_dir
    assert lucy.stop() == 0
    db = sqlite3.connect(os.path.join(data_dir, "lucy.db"))
    with db:
        n = db.execute("UPDATE documents SET title = ? WHERE source = 'call_recording'",
                       (CALL_NAME,)).rowcount
        db.execute("UPDATE documents_fts SET title = ? WHERE rowid IN (SELECT doc_rowid FROM"
                   " documents WHERE source = 'call_recording')", (CALL_NAME,))
        if before_55:
            db.execute("DELETE FROM schema_version WHERE version = 55")
    db.close()
    assert n > 0
    lucy = start_lucy(env={"LUCY_RECORDINGS_DIRS": str(d), "LUCY_ASR_ENGINE": "pocketsphinx"},
                      data_dir=data_dir)
    return lucy, rec, word


def test_a_hit_of_a_recording_indexed_by_lucy_0_1_shows_the_recording_s_title(start_lucy,
                                                                                tmp_path):
    """lucy 0.1.0 gave every segment's document the file name as its title
    and an upgrade keeps those documents: the hit still shows the
    recording's title, not the file name."""
    lucy, rec, word = titled_like_0_1(start_lucy, tmp_path, before_55=False)
    title = lucy.get("/recordings/" + rec["id"]).json()["title"]
    assert title != CALL_NAME, title
    card = next(h for h in lucy.get("/search", params={"q": word}).json()["hits"]
                if h["id"] == rec["id"])
    assert card["title"] == title and all(h["title"] == title for h in card["hits"]), card
    flat = [h for h in lucy.get("/search", params={"q": word, "group": "0"}).json()["hits"]
            if h["id"] == rec["id"]]
    assert flat and all(h["title"] == title for h in flat), flat


def test_migration_55_takes_the_file_name_out_of_a_recording_s_segments(start_lucy, tmp_path):
    """A store lucy 0.1.0 wrote matched the file name's words in every
    segment ("incoming" found the whole call). Migration 55 clears the
    documents' titles and queues them again: once the indexer has caught
    up, the file name matches nothing, the spoken words still do."""
    lucy, rec, word = titled_like_0_1(start_lucy, tmp_path, before_55=True)
    lucy.wait_for(lambda: lucy.get("/rag/stats").json()["pending_count"] == 0, timeout=60,
                  what="the documents queued by migration 55 indexed again")
    assert lucy.get("/search", params={"q": "incoming"}).json()["hits"] == []
    assert any(h["id"] == rec["id"]
               for h in lucy.get("/search", params={"q": word}).json()["hits"])
    db = sqlite3.connect(os.path.join(lucy.data_dir, "lucy.db"))
    left = db.execute("SELECT count(*) FROM documents WHERE source = 'call_recording'"
                      " AND title IS NOT NULL").fetchone()[0]
    db.close()
    assert left == 0
