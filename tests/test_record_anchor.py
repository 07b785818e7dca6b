"""Issue 16, the last gap of the tamper-evident record: deleting the NEWEST entry leaves no gap in the chain (no
later entry names it), so the bot keeps the chain's head, signed, in an anchor nobody below it can change or
remove, and compares the two on every read.

The anchor is a private personal snippet of the bot's own user. GitLab facts (gitlabhq/gitlabhq; the sandbox
mirrors them, pinned in tests/test_sandbox_snippets.py):
- app/policies/personal_snippet_policy.rb: only `is_author | admin` may read (when private), update or delete
  a personal snippet; a project role (Planner, Maintainer, Owner) gives nothing over it.
- lib/api/snippets.rb: `GET /snippets` lists the caller's own snippets (`SnippetsFinder.new(current_user,
  author: current_user)`), so the bot finds its anchor by title with no id stored where others could change it;
  `PUT`/`DELETE /snippets/:id` of another user's snippet is `404 Snippet Not Found`.
- lib/api/entities/basic_snippet.rb: the list shows each snippet's description: the head is read in one call.
- app/policies/project_policy.rb: `planner_access` enables `destroy_issue` (pete, a Planner, deletes issues).
The bot's token already has the `api` scope, which the snippets API needs (README, "The token").
"""

from __future__ import annotations

import json
from dataclasses import replace

from bot import record
from bot.record import ANCHOR_TITLE, Record, head_problems, sign_head
from bot.signer import FileSigner

from .e2e import file, mail
from .test_record import _chain, _entry
from .test_record_trust import checks, entries, held_note, http, licenses
from .test_sandbox_snippets import call


def anchors(url: str, token: str = "bot-token") -> list[dict]:
    status, listed = call(url, "GET", "/snippets", token)
    assert status == 200
    return [s for s in listed if s["title"] == ANCHOR_TITLE]


def test_16_a_planner_who_deletes_the_newest_entry_cannot_get_the_same_ticket_and_email_a_second_license(twin):
    """Finding: pete (Planner, his own token) deletes the newest entry's issue; no later entry names it, so the
    chain alone looked whole and the same ticket and email got a second license."""
    server, bot, _, (one, two) = licenses(twin, 2)
    (anchor,) = anchors(server.url)
    assert anchor["visibility"] == "private" and json.loads(anchor["description"])["seq"] == 2
    assert http(server.url, f"/projects/support%2Finternal-requests/issues/{two.iid}", "pete-token",
                "DELETE") == 204

    again = file(server.url, 3, ticket="512002", email="admin2@customer2.example.com")  # request 2's, again
    result = bot.run()
    assert result.returncode == 0 and f"#{again.iid} failed" in result.stdout
    note = held_note(server.url, again.iid)
    assert record.DAMAGED in note and "record entry 2" in note and "missing" in note
    assert len(mail(server.url)) == 2  # requests 1 and 2: never a second license for ticket 512002
    doctor = checks(bot)["record of issued licenses"]
    assert doctor.ok is False and "record entry 2" in doctor.detail
    from .test_find_doctor import cli
    found = cli(bot, "find", "admin2@customer2.example.com")
    assert "record entry 2" in found.stderr and "may be missing from this list" in found.stderr


def test_16_pete_and_maya_can_neither_read_nor_change_nor_remove_the_bots_anchor(twin):
    """Finding: an anchor a Planner or Maintainer could rewrite to the shorter chain would hide the deletion."""
    server, bot = twin
    file(server.url, 1)
    assert bot.run().returncode == 0
    (anchor,) = anchors(server.url)
    sid, before = anchor["id"], anchor["description"]
    for token in ("pete-token", "maya-token"):
        assert anchors(server.url, token) == []  # not in their list
        assert call(server.url, "GET", f"/snippets/{sid}", token)[0] == 404
        assert call(server.url, "GET", f"/snippets/{sid}/raw", token)[0] == 404
        assert call(server.url, "PUT", f"/snippets/{sid}", token, {"description": '{"seq":0}'})[0] == 404
        assert call(server.url, "DELETE", f"/snippets/{sid}", token)[0] == 404
    assert anchors(server.url)[0]["description"] == before and checks(bot)["record of issued licenses"].ok


def test_16_an_anchor_removed_or_rewritten_with_the_bots_token_is_damage_not_a_fresh_start(twin):
    """Finding: trust on first use must not restart after the anchor existed: only the bot's user or an admin
    can remove it, and entries written while it existed say so (signed)."""
    server, bot = twin
    file(server.url, 1)
    assert bot.run().returncode == 0
    (anchor,) = anchors(server.url)
    assert call(server.url, "PUT", f"/snippets/{anchor['id']}", "bot-token",
                {"description": json.dumps({"seq": 0, "digest": "", "sig": "AAAA"})})[0] == 200
    forged = checks(bot)["record of issued licenses"]
    assert forged.ok is False and "does not carry the bot's signature" in forged.detail
    assert call(server.url, "DELETE", f"/snippets/{anchor['id']}", "bot-token")[0] == 204
    gone = checks(bot)["record of issued licenses"]
    assert gone.ok is False and "is gone, yet entry 1 was written while it existed" in gone.detail
    again = file(server.url, 2)
    assert bot.run().returncode == 0 and record.DAMAGED in held_note(server.url, again.iid)
    assert anchors(server.url) == []  # not silently re-made


def test_16_overlapping_runs_keep_one_anchor_that_names_the_newest_entry(twin):
    """Finding: two runs at once must not make two anchors or leave it behind the chain (the lock serialises
    them; the anchor is read and written only while it is held)."""
    server, bot = twin
    for n in range(1, 5):
        file(server.url, n)
    first, second = bot.start(), bot.start()
    assert sorted([first.wait(timeout=120), second.wait(timeout=120)]) in ([0, 0], [0, 2])
    assert bot.run().returncode == 0
    (anchor,) = anchors(server.url)
    assert json.loads(anchor["description"])["seq"] == len(entries(server.url)) == 4
    assert checks(bot)["record of issued licenses"].ok


# --- the pure comparison and the first anchoring, on the fake tracker -------------------------------------------

def test_16_a_record_from_before_the_anchor_is_anchored_once_on_first_use_and_then_guards_its_newest_entry(vector):
    """Finding: a record written before the anchor must keep working (trust on first use, said once), and from
    then on the newest entry's deletion is caught."""
    tracker, issues = _chain(vector, 3)
    signer = FileSigner(vector["private"])
    first = Record(tracker, [vector["public"]], signer)
    assert first.problems() == () and len(first.notices) == 1 and "trust on first use" in first.notices[0]
    assert json.loads(tracker.anchor)["seq"] == 3
    again = Record(tracker, [vector["public"]], signer)
    assert again.problems() == () and again.notices == []  # made once
    del tracker.issues[issues[-1].iid]  # the newest entry, deleted
    (problem,) = Record(tracker, [vector["public"]]).problems()
    assert problem.where == "record entry 3" and "missing" in problem.what


def test_16_an_anchor_behind_the_chain_is_a_stopped_run_and_is_brought_up_to_date(vector):
    """Finding: a run stopped between an entry and its anchor must not hold every request forever."""
    tracker, _ = _chain(vector, 2)
    signer = FileSigner(vector["private"])
    two = Record(tracker, [vector["public"]]).entries()
    tracker.anchor = sign_head(two[0], signer).text()  # entry 1: the run stopped before writing entry 2's
    assert Record(tracker, [vector["public"]]).problems() == ()  # reading only: nothing written
    assert json.loads(tracker.anchor)["seq"] == 1
    assert Record(tracker, [vector["public"]], signer).problems() == ()
    assert json.loads(tracker.anchor)["seq"] == 2


def test_16_head_problems_name_every_missing_seq_and_ignore_an_anchor_signed_by_another_key(vector, private_key):
    tracker, _ = _chain(vector, 3)
    chain = Record(tracker, [vector["public"]]).entries()
    signer = FileSigner(vector["private"])
    three = sign_head(chain[2], signer).text()
    (gone,) = head_problems(chain[:1], three, [vector["public"]])
    assert gone.where == "record entries 2, 3"
    (other,) = head_problems(chain, sign_head(chain[2], FileSigner(private_key)).text(), [vector["public"]])
    assert "does not carry the bot's signature" in other.what
    replaced = replace(chain[2], signature="x")  # another entry 3 than the one the bot anchored
    (swapped,) = head_problems([*chain[:2], replaced], three, [vector["public"]])
    assert swapped.where == "record entry 3" and "replaced" in swapped.what
    entry, _ = _entry(vector["private"])
    assert head_problems([], None, [vector["public"]]) == [] and entry.anchored is False
