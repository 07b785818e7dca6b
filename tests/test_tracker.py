"""The GitLab adapter against mocked HTTP (python-gitlab's own tests use `responses` the same way)."""

from __future__ import annotations

import json
from datetime import date

import pytest
import responses
from responses import matchers

from bot import status as status_mod
from bot.gitlab.tracker import GitLabTracker
from bot.tracker import IssueEdit, TrackerError

API = "https://gitlab.example.com/api/v4"
PROJECT = f"{API}/projects/support%2Finternal-requests"
TOKEN = "glpat-SECRET-TOKEN-123"


def issue_json(iid: int, **extra) -> dict:
    data = {"iid": iid, "title": f"Request {iid}", "description": "x", "state": "opened",
            "labels": ["license-request"], "author": {"id": 10, "username": "alice"}, "confidential": True,
            "web_url": f"https://gitlab.example.com/support/internal-requests/-/issues/{iid}",
            "created_at": f"2026-11-{iid:02d}T10:00:00.000Z", "updated_at": "2026-11-27T10:00:00.000Z",
            "user_notes_count": 0, "assignees": []}
    data.update(extra)
    return data


@pytest.fixture
def tracker(config):
    return GitLabTracker(config, TOKEN)


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def _page_headers(page: int, last: int, url: str) -> dict:
    headers = {"X-Page": str(page), "X-Total-Pages": str(last), "X-Per-Page": "100"}
    if page < last:
        headers["X-Next-Page"] = str(page + 1)
        headers["Link"] = f'<{url}&page={page + 1}>; rel="next"'
    return headers


def test_open_requests_follow_every_page_oldest_first_and_need_no_search(tracker, mocked):
    url = f"{PROJECT}/issues?state=opened"
    marker_issue = issue_json(5, labels=[], description="<!-- license-bot:request-form v1 -->\n### Zendesk ticket")
    not_marker = issue_json(6, labels=[], description="mentions the license-bot request form in passing")
    pages = {1: [issue_json(10), issue_json(9), not_marker], 2: [issue_json(20), marker_issue], 3: [issue_json(30)]}
    for page, items in pages.items():
        params = {"page": str(page)} if page > 1 else {}
        mocked.get(f"{PROJECT}/issues", json=items, headers=_page_headers(page, 3, url),
                   match=[matchers.query_param_matcher({"state": "opened", "order_by": "created_at", "sort": "asc",
                                                        "per_page": "100", **params}, strict_match=True)])
    issues = tracker.open_requests()
    # Every page; the form-marked issue whose label did not apply (not the look-alike); oldest first.
    assert [i.iid for i in issues] == [5, 9, 10, 20, 30]
    assert tracker.api_calls == 3  # three pages; no search (GitLab before 16.6 did not index the marker)
    assert all("search" not in c.request.url for c in mocked.calls)


def test_a_429_is_waited_out(tracker, mocked):
    mocked.get(f"{API}/user", status=429, headers={"Retry-After": "0"}, json={"message": "slow down"})
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    assert tracker.me()["username"] == "license-bot"
    assert tracker.api_calls == 2


def test_a_5xx_then_success(tracker, mocked):
    mocked.get(f"{PROJECT}/issues/7", status=502, json={"message": "502 Bad Gateway"})
    mocked.get(f"{PROJECT}/issues/7", json=issue_json(7))
    assert tracker.get_issue(7).iid == 7
    assert tracker.api_calls == 2


def test_persistent_5xx_is_a_transient_error(tracker, mocked):
    mocked.get(f"{PROJECT}/issues/7", status=503, json={"message": "down"})
    with pytest.raises(TrackerError) as info:
        tracker.get_issue(7)
    assert info.value.transient and "503" in str(info.value)


def test_a_401_on_the_record_is_an_error_not_an_empty_answer(tracker, mocked):
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    mocked.get(f"{PROJECT}/issues", status=401, json={"message": "401 Unauthorized"})
    with pytest.raises(TrackerError) as info:
        tracker.home_issue()
    assert info.value.status == 401 and not info.value.transient
    assert "GITLAB_TOKEN" in str(info.value) and TOKEN not in str(info.value)


def test_a_403_says_what_role_is_needed(tracker, mocked):
    mocked.get(f"{PROJECT}/issues", status=403, json={"message": "403 Forbidden"})
    with pytest.raises(TrackerError, match="Reporter"):
        tracker.search_issues("x")


def test_a_public_project_is_refused(tracker, mocked):
    mocked.get(PROJECT, json={"id": 1, "path_with_namespace": "support/internal-requests", "visibility": "public"})
    with pytest.raises(TrackerError, match="is public.*anyone holding the link"):
        tracker.ensure_private()


def test_a_private_project_is_checked_once_per_run(tracker, mocked):
    mocked.get(PROJECT, json={"id": 1, "visibility": "private"})
    tracker.ensure_private()
    tracker.ensure_private()
    assert tracker.api_calls == 1


def _note(id_: int, body: str, user: str = "license-bot", system: bool = False) -> dict:
    return {"id": id_, "body": body, "author": {"username": user, "id": 99 if user == "license-bot" else 7},
            "system": system}


def test_status_note_is_the_bots_own_marked_note(tracker, mocked):
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    mocked.get(f"{PROJECT}/issues/3/notes", json=[
        _note(1, f"{status_mod.MARKER} pasted by a human", user="mallory"),
        _note(2, "added ~label", system=True),
        _note(3, f"{status_mod.MARKER}\nmine"),
    ])
    assert tracker.status_note(3).id == 3


def test_a_retried_post_never_makes_a_second_note(tracker, mocked):
    body = f"{status_mod.MARKER}\nhello"
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    # The first POST lands but its answer is lost in a 502; the adapter looks before posting again.
    mocked.post(f"{PROJECT}/issues/3/notes", status=502, json={"message": "502"})
    mocked.get(f"{PROJECT}/issues/3/notes", json=[_note(41, body)])
    note = tracker.save_status_note(3, body)
    assert note.id == 41
    posts = [c for c in mocked.calls if c.request.method == "POST"]
    assert len(posts) == 1


def test_a_failed_post_that_left_nothing_is_posted_again(tracker, mocked):
    body = f"{status_mod.MARKER}\nhello"
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    mocked.post(f"{PROJECT}/issues/3/notes", status=502, json={"message": "502"})
    mocked.get(f"{PROJECT}/issues/3/notes", json=[])
    mocked.post(f"{PROJECT}/issues/3/notes", status=201, json=_note(42, body))
    assert tracker.save_status_note(3, body).id == 42


def test_status_note_edits_in_place(tracker, mocked):
    mocked.put(f"{PROJECT}/issues/3/notes/42", json=_note(42, "new"),
               match=[matchers.json_params_matcher({"body": "new"})])
    assert tracker.save_status_note(3, "new", note_id=42).id == 42


def test_edits_are_batched_into_one_request(tracker, mocked, config):
    issue = _issue(config)
    expected = {"title": "[Success] - Created a license under a@b.co for 3 users",
                "add_labels": "license-request::success", "remove_labels": "license-request::processing",
                "state_event": "close", "confidential": True, "assignee_ids": [10]}
    mocked.put(f"{PROJECT}/issues/1", json=issue_json(1, state="closed", labels=["license-request::success"]),
               match=[matchers.json_params_matcher(expected)])
    updated = tracker.edit_issue(issue, IssueEdit(
        title=expected["title"], add_labels=("license-request::success",),
        remove_labels=("license-request::processing",), state_event="close", confidential=True, assignee_ids=(10,)))
    assert updated.state == "closed" and tracker.api_calls == 1


def test_an_empty_edit_costs_nothing(tracker, config):
    issue = _issue(config)
    assert tracker.edit_issue(issue, IssueEdit()) is issue and tracker.api_calls == 0


def _issue(config):
    from bot.tracker import Issue
    return Issue.from_api(issue_json(1))


def test_upload_returns_the_markdown_to_paste(tracker, mocked):
    mocked.post(f"{PROJECT}/uploads", json={
        "id": 5, "alt": "A.gitlab-license", "url": "/uploads/abc/A.gitlab-license",
        "full_path": "/-/project/1/uploads/abc/A.gitlab-license",
        "markdown": "[A.gitlab-license](/uploads/abc/A.gitlab-license)"})
    upload = tracker.upload("A.gitlab-license", b"KEY")
    assert upload.markdown == "[A.gitlab-license](/uploads/abc/A.gitlab-license)"
    assert b'filename="A.gitlab-license"' in mocked.calls[0].request.body


def test_membership_is_direct_active_and_looked_up_once(tracker, mocked):
    mocked.get(f"{API}/groups/support", json={"id": 1, "full_path": "support"})
    # members/:id, never members/all/:id, which also answers for inherited and shared-group members.
    mocked.get(f"{API}/groups/support/members/10", json={"id": 10, "username": "alice", "access_level": 30,
                                                          "state": "active"})
    mocked.get(f"{API}/groups/support/members/11", json={"id": 11, "username": "bob", "access_level": 30,
                                                          "state": "blocked"})
    mocked.get(f"{API}/groups/support/members/66", status=404, json={"message": "404 Not found"})
    assert tracker.member_level("support", 10) == 30 and tracker.member_level("support", 10) == 30
    assert tracker.member_level("support", 11) == 0 and tracker.member_level("support", 66) == 0
    assert tracker.api_calls == 4
    assert all("/members/all" not in c.request.url for c in mocked.calls)


def test_a_group_the_token_cannot_read_is_a_configuration_error_not_not_a_member(tracker, mocked):
    mocked.get(f"{API}/groups/hidden", status=404, json={"message": "404 Group Not Found"})
    with pytest.raises(TrackerError, match="group hidden does not exist or the bot's token cannot read it") as info:
        tracker.member_level("hidden", 10)
    assert not info.value.transient and info.value.status is None


def test_a_guest_token_is_refused_because_it_cannot_see_confidential_issues(tracker, mocked):
    mocked.get(PROJECT, json={"id": 1, "visibility": "private",
                              "permissions": {"project_access": {"access_level": 10}, "group_access": None}})
    with pytest.raises(TrackerError, match="Guest role.*cannot see confidential issues.*Reporter"):
        tracker.ensure_can_work()
    assert tracker.api_calls == 1


def test_the_record_issue_is_the_oldest_the_bots_user_opened(tracker, mocked):
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    mocked.get(f"{PROJECT}/issues", json=[issue_json(8, author={"id": 99}), issue_json(3, author={"id": 99})],
               match=[matchers.query_param_matcher({"author_id": "99", "state": "all"}, strict_match=False)])
    assert tracker.home_issue() == 3
    assert tracker.home_issue(create=("t", "d", "robot")) == 3 and tracker.api_calls == 2


def test_two_first_runs_that_each_open_a_home_issue_both_lock_on_the_oldest(tracker, mocked):
    """Bug caught: on a project where the bot had opened nothing, two runs started together each opened a home
    issue and each took "the" lock on its own, so both worked (the claims kept one email per request, but every
    request was fought over). Each marks its own home, then both take the oldest issue the bot opened."""
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    mine = matchers.query_param_matcher({"author_id": "99", "state": "all"}, strict_match=False)
    mocked.get(f"{PROJECT}/issues", json=[], match=[mine])  # neither run's home exists yet
    mocked.get(f"{PROJECT}/issues", match=[mine], json=[issue_json(6, author={"id": 99}),   # this run's
                                                        issue_json(5, author={"id": 99})])  # the other run's
    mocked.post(f"{PROJECT}/issues", json=issue_json(6, author={"id": 99}))
    marked = mocked.post(f"{PROJECT}/issues/6/award_emoji", json={"id": 1, "name": "robot", "user": {"id": 99}})
    assert tracker.home_issue(create=("t", "d", "robot")) == 5 and marked.call_count == 1


def test_unreachable_gitlab_is_transient_and_names_no_secret(config):
    from dataclasses import replace
    cfg = replace(config, gitlab=replace(config.gitlab, url="http://127.0.0.1:9", timeout_seconds=2))
    t = GitLabTracker(cfg, TOKEN, max_retries=0)
    with pytest.raises(TrackerError) as info:
        t.get_issue(1)
    assert info.value.transient and "unreachable" in str(info.value) and TOKEN not in str(info.value)


def test_missing_token_says_how_to_make_one(config):
    with pytest.raises(TrackerError, match="personal access token with the api scope for the bot.s own user"):
        GitLabTracker(config, None)


def test_requests_carry_the_token_only_in_the_header(tracker, mocked):
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    tracker.me()
    request = mocked.calls[0].request
    assert request.headers["PRIVATE-TOKEN"] == TOKEN and TOKEN not in request.url
    assert json.dumps(dict(mocked.calls[0].response.headers)).find(TOKEN) == -1


def test_a_record_entry_whose_post_landed_before_a_502_is_not_posted_again(config, tracker, mocked, vector):
    from dataclasses import replace

    from bot import license as lic_mod
    from bot.record import Entry, Record, entry_note, sign
    from bot.signer import FileSigner

    lic = lic_mod.build_trial("ops@example.org", 7, date(2026, 11, 27), lic_mod.TrialTerms())
    key = lic_mod.sign(lic, vector["private"], date(2026, 11, 27), boundary=lic_mod.DEFAULT_BOUNDARY)
    entry = Entry(lic_mod.license_id(key), lic_mod.fingerprint(key), 3, "u", "ops@example.org", 7, 5, "t",
                  "2026-11-27", str(lic.expires_at), "f.gitlab-license")
    signer = FileSigner(vector["private"])
    chained = replace(entry, seq=1, anchored=True)  # the first entry of the chain, written with its anchor
    body = entry_note(chained, key, sign(chained, signer))  # PKCS#1 v1.5 is deterministic: the same text
    mocked.get(f"{API}/user", json={"id": 99, "username": "license-bot"})
    mocked.get(f"{PROJECT}/issues", json=[])  # the first read: no entries yet
    mocked.post(f"{PROJECT}/issues", status=502, json={"message": "502"})
    mocked.get(f"{PROJECT}/issues", json=[issue_json(4, author={"id": 99}, description=body)])  # it had landed
    mocked.put(f"{PROJECT}/issues/4", json=issue_json(4, author={"id": 99}, description=body, state="closed"))
    mocked.get(f"{API}/snippets", json=[])  # no anchor yet: made for the empty record, then updated
    mocked.post(f"{API}/snippets", json={"id": 7})
    mocked.put(f"{API}/snippets/7", json={"id": 7})
    record = Record(tracker, vector["public"], signer)
    assert record.add(entry, key).entry == chained
    assert len([c for c in mocked.calls if c.request.method == "POST" and "/issues" in c.request.url]) == 1


def test_a_reaction_the_bot_has_already_is_a_refusal_not_an_error(tracker, mocked):
    """gitlabhq lib/api/award_emoji.rb: a reaction AwardEmojis::AddService does not save is answered
    `not_found!("Award Emoji #{message}")`, i.e. 404 with the validation's message; that is how a second
    identical reaction by the same user (the claim someone else holds) looks. Any other 404 is an error."""
    award = {"id": 7, "name": "one", "user": {"id": 99, "username": "license-bot"},
             "created_at": "2026-11-27T03:00:00.000Z"}
    mocked.post(f"{PROJECT}/issues/3/award_emoji", json=award, status=201)
    assert tracker.award(3, "one").id == 7
    mocked.replace(responses.POST, f"{PROJECT}/issues/3/award_emoji", status=404,
                   json={"message": "404 Award Emoji Name has already been taken Not Found"})
    assert tracker.award(3, "one") is None
    mocked.replace(responses.POST, f"{PROJECT}/issues/3/award_emoji", status=404,
                   json={"message": "404 Issue Not Found"})
    with pytest.raises(TrackerError, match="not found"):
        tracker.award(3, "one")
    assert len([c for c in mocked.calls if c.request.method == "POST"]) == 3  # never retried blindly
