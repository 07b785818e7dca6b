"""The request tracker in GitLab, over python-gitlab. The only module that talks to GitLab.

Thin on purpose: it fetches and writes, and the processor decides. Every call is counted, GitLab
errors become TrackerError with a message fit for a person (never the token), and POSTs are never
retried blindly: a note is created again only after checking that the first try left nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from urllib.parse import quote

import gitlab
import gitlab.exceptions
import requests

from . import meaning
from . import status as status_mod
from .config import Config
from .errors import BotError
from .inert import inert
from .markers import FORM_MARKER


def _award(a: dict[str, Any]) -> Award:
    user = a.get("user") or {}
    return Award(id=int(a.get("id") or 0), name=a.get("name") or "", user_id=int(user.get("id") or 0),
                 username=user.get("username") or "", created_at=_time(a.get("created_at")) or _EPOCH)


class TrackerError(BotError):
    """GitLab could not be asked or refused the bot. `transient` errors are worth retrying later."""

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None):
        super().__init__(message)
        self.transient = transient
        self.status = status


@dataclass(frozen=True)
class Issue:
    iid: int
    title: str
    description: str
    state: str
    labels: tuple[str, ...]
    author_username: str
    author_id: int
    confidential: bool
    web_url: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    user_notes_count: int = 0
    assignee_ids: tuple[int, ...] = ()

    @property
    def ref(self) -> str:
        return f"#{self.iid}"

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Issue:
        author = data.get("author") or {}
        return cls(
            iid=int(data["iid"]),
            title=data.get("title") or "",
            description=data.get("description") or "",
            state=data.get("state") or "opened",
            labels=tuple(data.get("labels") or ()),
            author_username=author.get("username") or "",
            author_id=int(author.get("id") or 0),
            confidential=bool(data.get("confidential")),
            web_url=data.get("web_url") or "",
            created_at=_time(data.get("created_at")) or _EPOCH,
            updated_at=_time(data.get("updated_at")) or _EPOCH,
            closed_at=_time(data.get("closed_at")),
            user_notes_count=int(data.get("user_notes_count") or 0),
            assignee_ids=tuple(int(a["id"]) for a in data.get("assignees") or () if "id" in a),
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Note:
    id: int
    body: str
    author_username: str = ""
    author_id: int = 0
    system: bool = False  # written by GitLab itself, as the user who acted; nobody can edit it
    created_at: datetime = field(default=datetime(1970, 1, 1, tzinfo=timezone.utc), compare=False)

    @classmethod
    def from_api(cls, d: dict[str, Any]) -> Note:
        author = d.get("author") or {}
        return cls(id=int(d["id"]), body=d.get("body") or "", author_username=author.get("username") or "",
                   author_id=int(author.get("id") or 0), system=bool(d.get("system")),
                   created_at=_time(d.get("created_at")) or _EPOCH)


@dataclass(frozen=True)
class Award:
    """A reaction (award emoji): only its own user (or an admin) removes it (lib/api/award_emoji.rb)."""

    id: int
    name: str
    user_id: int
    username: str
    created_at: datetime


@dataclass(frozen=True)
class LabelEvent:
    """One `resource_label_events` entry: who added or removed which label."""

    id: int
    user_id: int
    username: str
    action: str  # "add" or "remove"
    label: str
    created_at: datetime


@dataclass(frozen=True)
class Upload:
    url: str
    markdown: str
    full_path: str = ""


@dataclass(frozen=True)
class IssueEdit:
    """Everything the bot changes on an issue, sent as one request."""

    title: str | None = None
    add_labels: tuple[str, ...] = ()
    remove_labels: tuple[str, ...] = ()
    state_event: str | None = None
    confidential: bool | None = None
    assignee_ids: tuple[int, ...] | None = None
    description: str | None = None  # only ever the bot's own text (a record entry it restores)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self.title is not None:
            data["title"] = self.title
        if self.description is not None:
            data["description"] = self.description
        if self.add_labels:
            data["add_labels"] = ",".join(self.add_labels)
        if self.remove_labels:
            data["remove_labels"] = ",".join(self.remove_labels)
        if self.state_event:
            data["state_event"] = self.state_event
        if self.confidential is not None:
            data["confidential"] = self.confidential
        if self.assignee_ids is not None:
            data["assignee_ids"] = list(self.assignee_ids)
        return data

    def applied_to(self, issue: Issue) -> Issue:
        """The issue as it is after this edit (what GitLab returns)."""
        labels = [lb for lb in issue.labels if lb not in self.remove_labels]
        labels += [lb for lb in self.add_labels if lb not in labels]
        state = {"close": "closed", "reopen": "opened"}.get(self.state_event or "", issue.state)
        return Issue(**{**issue.__dict__, "labels": tuple(labels), "state": state,
                        "title": self.title if self.title is not None else issue.title,
                        "description": self.description if self.description is not None else issue.description,
                        "confidential": issue.confidential if self.confidential is None else self.confidential,
                        "assignee_ids": issue.assignee_ids if self.assignee_ids is None else self.assignee_ids})


class Tracker(Protocol):
    """What the processor needs from the tracker; GitLabTracker and the test fakes provide it."""

    def open_requests(self) -> list[Issue]: ...
    def get_issue(self, iid: int) -> Issue: ...
    def status_note(self, iid: int) -> Note | None: ...
    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note: ...
    def edit_issue(self, issue: Issue, edit: IssueEdit) -> Issue: ...
    def upload(self, filename: str, data: bytes) -> Upload: ...
    def ensure_can_work(self) -> None: ...
    def me(self) -> dict[str, Any]: ...
    def create_label(self, name: str, color: str, description: str) -> bool: ...
    def get_label(self, name: str) -> dict | None: ...
    def delete_label(self, name: str) -> None: ...
    def group(self, group: str) -> dict[str, Any]: ...
    def member_level(self, group: str, user_id: int) -> int: ...
    def label_events(self, iid: int) -> list[LabelEvent]: ...
    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None: ...
    def bot_issues(self) -> list[Issue]: ...
    def recent_bot_issues(self, since: datetime, reacted: str | None = None) -> list[Issue]: ...
    def open_entry(self, title: str, description: str, landed) -> Issue: ...
    def not_confidential(self, iids: list[int]) -> list[Issue]: ...
    def record_head(self, title: str) -> str | None: ...
    def save_record_head(self, title: str, text: str) -> None: ...
    def comments(self, iid: int) -> list[Note]: ...
    def all_notes(self, iid: int) -> list[Note]: ...
    def awards(self, iid: int) -> list[Award]: ...
    def note_body(self, iid: int, note_id: int) -> str | None: ...
    def delete_note(self, iid: int, note_id: int) -> None: ...
    def award(self, iid: int, name: str) -> Award | None: ...
    def unaward(self, iid: int, award_id: int) -> bool: ...
    def add_note(self, iid: int, body: str, landed) -> Note: ...
    def search_issues(self, text: str, in_: str = "title,description", state: str = "all") -> list[Issue]: ...


@dataclass
class CallCounter:
    """Counts every HTTP request python-gitlab makes, retries included."""

    count: int = 0
    by_method: dict[str, int] = field(default_factory=dict)

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        self.count += 1
        method = response.request.method or "?"
        self.by_method[method] = self.by_method.get(method, 0) + 1
        return response


class GitLabTracker:
    """The tracker project in a real (or sandbox) GitLab."""

    def __init__(self, config: Config, token: str | None, *, max_retries: int = 3,
                 session: requests.Session | None = None):
        if not token:
            raise TrackerError("GITLAB_TOKEN is not set: create a personal access token with the api scope for the "
                               "bot's own user (README, \"The token\") and store it as a masked CI variable")
        self.config = config
        self.calls = CallCounter()
        session = session or requests.Session()
        session.hooks["response"].append(self.calls)
        self.gl = gitlab.Gitlab(config.gitlab.url, private_token=token, timeout=config.gitlab.timeout_seconds,
                                retry_transient_errors=True, session=session, user_agent="license-bot")
        self.max_retries = max_retries
        self.project = self.gl.projects.get(config.gitlab.project, lazy=True)
        self._project_path = f"/projects/{quote(str(config.gitlab.project), safe='')}"
        self._project_info: dict[str, Any] | None = None
        self._levels: dict[tuple[str, int], int] = {}
        self._groups: dict[tuple[str, str], dict[str, Any]] = {}
        self._record_iid: int | None = None
        self._me: dict[str, Any] | None = None
        self._anchor_id: int | None = None

    @property
    def api_calls(self) -> int:
        return self.calls.count

    # --- reads --------------------------------------------------------------------------------------

    def open_requests(self) -> list[Issue]:
        """Open requests, oldest first: labelled ones, and form-marked ones whose label did not apply.

        One listing of every open issue, filtered here: GitLab's full-text search did not index HTML
        comments before about 16.6, so searching for the form marker would lose unlabelled requests.
        """
        label = self.config.requests.label
        issues = self._list(state="opened", order_by="created_at", sort="asc")
        return sorted((i for i in issues if label in i.labels or FORM_MARKER in i.description),
                      key=lambda i: (i.created_at, i.iid))

    def requests_since(self, since: datetime) -> list[Issue]:
        """Every request filed since then, open or closed, oldest first (for `report`): one call per 100 issues."""
        label = self.config.requests.label
        issues = self._list(state="all", created_after=since.isoformat(), order_by="created_at", sort="asc")
        return sorted((i for i in issues if i.created_at >= since and (label in i.labels or FORM_MARKER in
                                                                        i.description)),
                      key=lambda i: (i.created_at, i.iid))

    def get_issue(self, iid: int) -> Issue:
        data = self._call(lambda: self.project.issues.get(iid, max_retries=self.max_retries).attributes,
                          f"read issue #{iid}")
        return Issue.from_api(data)

    def status_note(self, iid: int) -> Note | None:
        """The bot's status note: the oldest note with the marker written by the bot's own user."""
        me = self.me()["id"]
        for note in self.comments(iid):
            if note.author_id == me and status_mod.is_status_note(note.body):
                return note
        return None

    def comments(self, iid: int) -> list[Note]:
        """Every comment on an issue, oldest first (GitLab's own system notes left out)."""
        return [n for n in self.all_notes(iid) if not n.system]

    def all_notes(self, iid: int) -> list[Note]:
        """Every note on an issue, oldest first, GitLab's system notes included (`system`)."""
        issue = self.project.issues.get(iid, lazy=True)
        notes = self._call(lambda: [n.attributes for n in issue.notes.list(
            iterator=True, sort="asc", order_by="created_at", per_page=100, max_retries=self.max_retries)],
            f"read the notes of issue #{iid}")
        return [Note.from_api(d) for d in notes]

    def unaward(self, iid: int, award_id: int) -> bool:
        """Remove one of the bot's reactions, by id; False when it is gone already."""
        path = f"{self._project_path}/issues/{iid}/award_emoji/{award_id}"

        def remove() -> bool:
            self.gl.http_delete(path, max_retries=self.max_retries)
            return True
        return self._call(remove, f"remove a reaction on issue #{iid}", absent={404: False})

    def note_body(self, iid: int, note_id: int) -> str | None:
        """One note's text as it is now; None when it is gone."""
        issue = self.project.issues.get(iid, lazy=True)
        return self._call(lambda: issue.notes.get(note_id, max_retries=self.max_retries).body or "",
                          f"read a note of issue #{iid}", absent={404: None})

    def delete_note(self, iid: int, note_id: int) -> None:
        issue = self.project.issues.get(iid, lazy=True)
        self._call(lambda: issue.notes.delete(note_id, max_retries=self.max_retries),
                   f"delete a note of issue #{iid}", absent={404: None})

    def awards(self, iid: int) -> list[Award]:
        """The emoji reactions on an issue, oldest first."""
        path = f"{self._project_path}/issues/{iid}/award_emoji"
        data = self._call(lambda: list(self.gl.http_list(path, iterator=True, per_page=100,
                                                         max_retries=self.max_retries)),
                          f"read the reactions on issue #{iid}")
        return sorted((_award(a) for a in data), key=lambda a: (a.created_at, a.id))

    def award(self, iid: int, name: str) -> Award | None:
        """React to an issue as the bot; None when the bot's user has that reaction there already. GitLab
        refuses a second identical reaction by the same user with 404 "... has already been taken"
        (`lib/api/award_emoji.rb`, `AwardEmoji` uniqueness). Never retried blindly: a retry after a POST
        that landed would look like a refusal, so a transient failure is an error the run reports."""
        path = f"{self._project_path}/issues/{iid}/award_emoji"
        try:
            data = self.gl.http_post(path, post_data={"name": name}, retry_transient_errors=False)
        except gitlab.exceptions.GitlabError as exc:
            if exc.response_code == 404 and "already been taken" in str(exc.error_message):
                return None
            raise self._translate(exc, f"claim issue #{iid}") from None
        except requests.RequestException as exc:
            raise self._translate(exc, f"claim issue #{iid}") from None
        return _award(data)

    def label_events(self, iid: int) -> list[LabelEvent]:
        """Who added and removed which label on an issue, oldest first."""
        path = f"{self._project_path}/issues/{iid}/resource_label_events"
        data = self._call(lambda: list(self.gl.http_list(path, iterator=True, per_page=100,
                                                         max_retries=self.max_retries)),
                          f"read the label history of issue #{iid}")
        return [LabelEvent(id=int(e.get("id") or 0), user_id=int((e.get("user") or {}).get("id") or 0),
                           username=(e.get("user") or {}).get("username") or "", action=e.get("action") or "",
                           label=(e.get("label") or {}).get("name") or "",
                           created_at=_time(e.get("created_at")) or _EPOCH) for e in data]

    def bot_issues(self) -> list[Issue]:
        """Every issue the bot's own user opened (and `requests.record_authors`, the bot's users before a
        token change), oldest first: the record's entries (and the old record issue). Issues filter by author
        (notes cannot), so this costs one call per 100 licenses."""
        found = {i.iid: i for i in self._list(author_id=self.me()["id"], state="all", order_by="created_at",
                                                sort="asc")}
        for name in self.config.requests.record_authors:
            found.update((i.iid, i) for i in self._list(author_username=name, state="all", order_by="created_at",
                                                         sort="asc"))
        return sorted(found.values(), key=lambda i: (i.created_at, i.iid))

    def recent_bot_issues(self, since: datetime, reacted: str | None = None) -> list[Issue]:
        """The issues the bot's own user opened on or after SINCE (and `requests.record_authors`'), with REACTED
        only those the bot reacted to with that emoji: one call per 100. `scope=created_by_me` is the author filter
        on the token's own user, so no GET /user first; `my_reaction_emoji` the token user's own reactions."""
        extra = {"my_reaction_emoji": reacted} if reacted else {}
        found = self._list(scope="created_by_me", created_after=since.isoformat(), state="all", **extra)
        for name in self.config.requests.record_authors:
            found += self._list(author_username=name, created_after=since.isoformat(), state="all", **extra)
        return found

    def open_entry(self, title: str, description: str, landed) -> Issue:
        """Open a confidential issue once, then close it (a record entry is done, not work): after a failed
        POST that may have landed, `landed(issues)` looks for it among the bot's issues before posting again."""
        data = {"title": title, "description": description, "confidential": True}
        for attempt in range(self.max_retries + 1):
            try:
                created = self.project.issues.create(data, retry_transient_errors=False)
                issue = Issue.from_api(created.attributes)
                break
            except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
                error = self._translate(exc, "write the record entry")
                if not error.transient or attempt == self.max_retries:
                    raise error from None
            existing = landed(self.bot_issues())
            if existing is not None:
                issue = existing
                break
        return self.edit_issue(issue, IssueEdit(state_event="close")) if issue.state == "opened" else issue

    def record_head(self, title: str) -> str | None:
        """The text of the bot's own anchor snippet (the record's head), None if it has none. `GET /snippets`
        lists only the caller's own snippets (`SnippetsFinder.new(current_user, author: current_user)`,
        lib/api/snippets.rb), so it is found by title with no id kept anywhere a person could change: one
        call per 100 of the bot's snippets. The oldest wins if a retried POST ever made two."""
        mine = self._call(lambda: list(self.gl.http_list("/snippets", iterator=True, per_page=100,
                                                         max_retries=self.max_retries)),
                          "read the record's anchor (the bot's own snippets; the token needs the api scope)")
        found = sorted((s for s in mine if s.get("title") == title), key=lambda s: int(s.get("id") or 0))
        self._anchor_id = int(found[0]["id"]) if found else None
        return (found[0].get("description") or "") if found else None

    def save_record_head(self, title: str, text: str) -> None:
        """Write the anchor: a private personal snippet (readable, changeable and deletable only by its author
        and admins: app/policies/personal_snippet_policy.rb). The head is its description, which the list
        shows, so reading it back costs no second call."""
        if self._anchor_id is None:
            data = {"title": title, "description": text, "visibility": "private", "file_name": "record-head.txt",
                    "content": "The newest entry of License Bot's record, signed by the bot. Do not edit or delete."}
            created = self._call(lambda: self.gl.http_post("/snippets", post_data=data),
                                 "create the record's anchor snippet")
            self._anchor_id = int(created["id"])
        else:
            anchor_id = self._anchor_id
            self._call(lambda: self.gl.http_put(f"/snippets/{anchor_id}", post_data={"description": text}),
                       "update the record's anchor snippet")

    def labelled(self, label: str) -> bool:
        """Whether any issue, open or closed, carries the label: one call."""
        return self._call(lambda: bool(self.project.issues.list(labels=[label], state="all", per_page=1,
                                                                get_all=False, max_retries=self.max_retries)),
                          "list issues")

    def not_confidential(self, iids: list[int]) -> list[Issue]:
        """Those of these issues anyone may read (not confidential): one call per 100 issues."""
        found: list[Issue] = []
        for start in range(0, len(iids), 100):
            chunk = set(iids[start:start + 100])
            found += [i for i in self._list(iids=sorted(chunk), confidential="false", state="all")
                      if i.iid in chunk and not i.confidential]
        return found

    def home_issue(self, *, create: tuple[str, str, str] | None = None) -> int | None:
        """The iid of the bot's home issue, where its run lock lives: the oldest issue the bot's own user (or a
        `requests.record_authors` user) opened (nobody else can open one as the bot, and nobody can open an
        older one): the old record issue, or the first record entry. With none, `create`'s (title, description,
        emoji) opens a confidential one, marked with the bot's own reaction (so that the record's audit tells it
        from an erased entry)."""
        if self._record_iid is None:
            mine = self.bot_issues()  # with `requests.record_authors`: after a token change, the same home
            if mine:
                self._record_iid = mine[0].iid
            elif create:
                data = {"title": create[0], "description": create[1], "confidential": True}
                created = self._call(lambda: self.project.issues.create(data, retry_transient_errors=False),
                                     "open the bot's home issue")
                self.award(int(created.iid), create[2])  # marked first: never taken for an erased entry
                # Two first runs may each open one: both then take the oldest, so they share one lock.
                self._record_iid = self.bot_issues()[0].iid
        return self._record_iid

    def add_note(self, iid: int, body: str, landed, doing: str = "") -> Note:
        """Post a comment once: after a failed POST that may have landed, `landed(notes)` looks for it
        among the issue's notes before posting again (python-gitlab would retry POSTs blindly)."""
        issue = self.project.issues.get(iid, lazy=True)
        for attempt in range(self.max_retries + 1):
            try:
                created = issue.notes.create({"body": body}, retry_transient_errors=False)
                return Note(id=int(created.id), body=body, author_username=self.me()["username"],
                            author_id=self.me()["id"])
            except (gitlab.exceptions.GitlabError, requests.RequestException) as exc:
                error = self._translate(exc, doing or f"comment on issue #{iid}")
                if not error.transient or attempt == self.max_retries:
                    raise error from None
            existing = landed(self.comments(iid))
            if existing is not None:
                return existing
        raise AssertionError("unreachable")  # pragma: no cover

    def project_info(self) -> dict[str, Any]:
        """The tracker project (visibility, default branch), read once per run."""
        if self._project_info is None:
            project = self.config.gitlab.project
            self._project_info = self._call(lambda: self.gl.projects.get(project, max_retries=self.max_retries)
                                            .attributes, f"read project {project}")
        return self._project_info

    def ensure_private(self) -> None:
        """Refuse a public tracker: an upload there is readable by anyone holding its link."""
        if self.project_info().get("visibility") == "public":
            raise TrackerError(f"project {self.config.gitlab.project} is public: license files uploaded there could "
                               "be downloaded by anyone holding the link. Make the tracker private (Settings > "
                               "General > Visibility) before running the bot", status=None)

    def ensure_can_work(self) -> None:
        """Refuse what would make a run or a search quietly wrong: a public tracker, or a token below
        Reporter, which cannot see confidential issues (every request is one) and would report
        "nothing found". One call, the project itself, which GitLab answers with the caller's role."""
        self.ensure_private()
        level = self.my_level()
        if level < 20:
            role = {0: "no role", 10: "the Guest role", 5: "the Minimal Access role"}.get(level, f"level {level}")
            raise TrackerError(f"the bot's token has {role} in {self.config.gitlab.project}: it cannot see "
                               "confidential issues, and every request is confidential. Give the token's user the "
                               "Reporter role or above (Settings > Access tokens)", status=None)

    def my_level(self) -> int:
        """The token's own role in the tracker, from the project's `permissions` (direct or through its group)."""
        permissions = self.project_info().get("permissions") or {}
        levels = [int((permissions.get(k) or {}).get("access_level") or 0) for k in ("project_access", "group_access")]
        if max(levels) > 0:
            return max(levels)
        return self.access_level(self.me()["id"])  # e.g. inherited from an ancestor group: ask directly

    def access_level(self, user_id: int) -> int:
        """The user's role in the tracker (10 Guest, 20 Reporter, 30 Developer, 40 Maintainer, 50 Owner); 0: none."""
        return self._call(lambda: int(self.project.members_all.get(user_id, max_retries=self.max_retries)
                                      .access_level), "read the bot's role in the tracker", absent={404: 0})

    def label_names(self) -> set[str]:
        return self._call(lambda: {lb.name for lb in self.project.labels.list(iterator=True, per_page=100,
                                                                             max_retries=self.max_retries)},
                          "list the tracker's labels")

    def file_text(self, path: str, ref: str) -> str | None:
        """A repository file's text on a branch; None when it does not exist."""
        return self._call(lambda: self.project.files.get(path, ref=ref, max_retries=self.max_retries)
                          .decode().decode("utf-8"), f"read {path}", absent={404: None})

    def write_file(self, path: str, text: str, branch: str, message: str, *, create: bool) -> None:
        data = {"file_path": path, "branch": branch, "content": text, "commit_message": message}
        if create:
            self._call(lambda: self.project.files.create(data, max_retries=self.max_retries), f"create {path}")
        else:
            self._call(lambda: self.project.files.update(path, data, max_retries=self.max_retries), f"update {path}")

    def version(self) -> dict[str, Any]:
        return self._call(lambda: self.gl.http_get("/version", max_retries=self.max_retries), "read GitLab's version")

    def license_plan(self) -> str | None:
        """The installed license's plan (EE's GET /license); None when the token may not read it (only an
        administrator may, `ee/lib/api/license.rb`) or GitLab has no such call (CE)."""
        info = self._call(lambda: self.gl.http_get("/license", max_retries=self.max_retries),
                          "read GitLab's license", absent={403: None, 404: None})
        return str(info.get("plan") or "") or None if isinstance(info, dict) else None

    def token_info(self) -> dict[str, Any] | None:
        """The token's own record (scopes, expiry); None where GitLab has no such call for it."""
        return self._call(lambda: self.gl.http_get("/personal_access_tokens/self", max_retries=self.max_retries),
                          "read the token's scopes and expiry", absent={404: None, 403: None})

    def pipeline_schedules(self, project: str) -> list[dict[str, Any]]:
        path = f"/projects/{quote(str(project), safe='')}/pipeline_schedules"
        return self._call(lambda: list(self.gl.http_list(path, iterator=True, max_retries=self.max_retries)),
                          f"read the pipeline schedules of project {project}")

    def me(self) -> dict[str, Any]:
        if self._me is None:
            self._me = self._call(lambda: self.gl.http_get("/user", max_retries=self.max_retries), "read the bot user")
        return self._me

    def member_level(self, group: str, user_id: int) -> int:
        """The user's role as a *direct*, active member of the group (0: none).

        `members/:user_id`, not `members/all/:user_id`: the latter also answers for members inherited
        from ancestor groups and for members of groups the group is shared with. A group the token
        cannot read answers 404 for every user, so the group is read first: that is a TrackerError
        (a configuration problem), never "not a member".
        """
        key = (group, user_id)
        if key not in self._levels:
            self.group(group)
            members = self.gl.groups.get(group, lazy=True).members

            def lookup() -> int:
                member = members.get(user_id, max_retries=self.max_retries).attributes
                return int(member.get("access_level") or 0) if member.get("state", "active") == "active" else 0
            try:
                self._levels[key] = self._call(lookup, f"check membership of group {group}", absent={404: 0})
            except TrackerError as exc:
                if exc.status == 403:  # GroupPolicy: a private group's members are for those with access to it
                    raise TrackerError(
                        f"the bot's token may read group {group} but not its members (403): GitLab shows a private "
                        f"group's members only to members of that group. A project access token's user can never "
                        f"join a group; use a dedicated user's (or a service account's) personal access token, a "
                        f"member of {group} (README, \"The token\")", status=403) from None
                raise
        return self._levels[key]

    def group(self, group: str) -> dict[str, Any]:
        """A group the bot must read (requester and approver groups); cached for the run."""
        key = ("group", group)
        if key not in self._groups:
            def read() -> dict[str, Any]:
                return self.gl.groups.get(group, max_retries=self.max_retries).attributes
            try:
                self._groups[key] = read()
            except gitlab.exceptions.GitlabError as exc:
                if exc.response_code == 404:
                    raise TrackerError(f"group {group} does not exist or the bot's token cannot read it (404): "
                                       f"check the group's path in config.yaml, or make the bot's user a member "
                                       f"of {group}", status=None) from None
                raise self._translate(exc, f"read group {group}") from None
            except requests.RequestException as exc:
                raise self._translate(exc, f"read group {group}") from None
        return self._groups[key]

    def search_issues(self, text: str, in_: str = "title,description", state: str = "all") -> list[Issue]:
        """GitLab's full-text search: a hint for people-facing lists only, never proof of absence."""
        return self._list(state=state, search=text, order_by="created_at", sort="desc", **{"in": in_})

    # --- writes -------------------------------------------------------------------------------------

    def edit_issue(self, issue: Issue, edit: IssueEdit) -> Issue:
        payload = edit.payload()
        if not payload:
            return issue
        data = self._call(lambda: self.project.issues.update(issue.iid, payload, max_retries=self.max_retries),
                          f"edit issue #{issue.iid}")
        return Issue.from_api(data) if isinstance(data, dict) and "iid" in data else edit.applied_to(issue)

    def save_status_note(self, iid: int, body: str, note_id: int | None = None) -> Note:
        issue = self.project.issues.get(iid, lazy=True)
        if note_id is not None:
            self._call(lambda: issue.notes.update(note_id, {"body": body}, max_retries=self.max_retries),
                       f"edit the status note of issue #{iid}")
            return Note(id=note_id, body=body)

        def landed(notes: list[Note]) -> Note | None:  # the POST may have landed before its error
            return next((n for n in notes if n.author_id == self.me()["id"] and status_mod.is_status_note(n.body)),
                        None)
        return self.add_note(iid, body, landed, f"write the status note of issue #{iid}")

    def create_label(self, name: str, color: str, description: str) -> bool:
        """Create a project label; False when it exists already. Creation is atomic: GitLab answers 409,
        or, when two creations race past its uniqueness check, 400 "has already been taken"."""
        data = {"name": name, "color": color, "description": description}
        try:
            return self._call(lambda: self.project.labels.create(data, max_retries=self.max_retries) is not None,
                              f"create label {name}", absent={409: False})
        except TrackerError as exc:
            if exc.status == 400 and "already been taken" in str(exc):
                return False
            raise

    def get_label(self, name: str) -> dict | None:
        return self._call(lambda: self.project.labels.get(name, max_retries=self.max_retries).attributes,
                          f"read label {name}", absent={404: None})

    def delete_label(self, name: str) -> None:
        self._call(lambda: self.project.labels.delete(name, max_retries=self.max_retries), f"delete label {name}",
                   absent={404: None})

    def upload(self, filename: str, data: bytes) -> Upload:
        # Not project.upload(): for a project addressed by path it encodes the path twice (%252F).
        result = self._call(lambda: self.gl.http_post(f"{self._project_path}/uploads", files={"file": (filename, data)},
                                                      max_retries=self.max_retries),
                            f"upload {filename}")
        # A server reply the bot will write into notes: made inert here, where it enters (see bot/inert.py).
        return Upload(url=result["url"], markdown=inert(result["markdown"]), full_path=result.get("full_path", ""))

    # --- plumbing -----------------------------------------------------------------------------------

    def _list(self, **filters: Any) -> list[Issue]:
        def fetch() -> list[Issue]:
            pages = self.project.issues.list(iterator=True, per_page=100, max_retries=self.max_retries, **filters)
            return [Issue.from_api(i.attributes) for i in pages]
        return self._call(fetch, "list issues")

    def _call(self, func, doing: str, absent: dict[int, Any] | None = None):
        """Run one python-gitlab call; `absent` maps the status codes that are an answer (404: no such
        thing, 409: exists already) to the value to return. Any other failure is a TrackerError."""
        try:
            return func()
        except gitlab.exceptions.GitlabError as exc:
            if absent and exc.response_code in absent:
                return absent[exc.response_code]
            raise self._translate(exc, doing) from None
        except requests.RequestException as exc:
            raise self._translate(exc, doing) from None

    def _translate(self, exc: Exception, doing: str) -> TrackerError:
        where = f"{self.config.gitlab.url} ({self.config.gitlab.project})"
        if isinstance(exc, requests.RequestException):
            return TrackerError(f"could not {doing}: GitLab at {where} is unreachable ({type(exc).__name__})",
                                transient=True)
        code = getattr(exc, "response_code", None)
        detail = str(getattr(exc, "error_message", "") or "")[:200]
        if code == 401:
            return TrackerError(f"could not {doing}: GitLab refused the token (401). Check that GITLAB_TOKEN is "
                                "valid and not expired", status=code)
        if code == 403:
            return TrackerError(f"could not {doing}: the token's user lacks permission (403). Give it at least "
                                "the Reporter role and the api scope", status=code)
        if code == 404:
            return TrackerError(f"could not {doing}: not found (404) at {where}: {detail}", status=code)
        transient = code is None or code >= 500 or code in (408, 409, 429)
        if transient:  # a server or proxy failing: what it means and the code, never its page (bot.meaning)
            return TrackerError(f"could not {doing}: {meaning.http('GitLab', code)}", transient=True, status=code)
        return TrackerError(f"could not {doing}: GitLab answered {code}: {detail}", transient=transient, status=code)

