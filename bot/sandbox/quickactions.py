"""What writing an issue does: labels, quick actions, assignees, and the edits the API takes.

GitLab facts mirrored: project members of any role, Guests included, may set labels, assignees and
confidentiality on an issue they create (IssuePolicy `set_issue_metadata` on new issues), through quick
actions or `labels=`; `/label` applies only labels that exist, and a quick action that applies nothing
stays in the text (Quick actions docs); `labels`/`add_labels` create labels that do not exist, for
Reporters and up only (`Labels::FindOrCreateService`: `create_label`), a Guest's unknown names are dropped;
scoped labels replace each other and issues take several assignees on paid tiers only (Scoped labels;
Multiple assignees); editing another's issue needs Reporter; each change leaves a system note and a
`resource_label_events` entry.
"""

from __future__ import annotations

import re

from .store import GUEST, REPORTER, ApiError, _bool, _id_list, _label_list, _now

# GitLab's `Gitlab::QuickActions::Extractor#commands_regex`, with the commands the sandbox knows: code blocks,
# inline code over lines, HTML blocks and `>>>` quotes are matched first and left alone.
_QUICK_ACTIONS = re.compile(r"""
    (?P<code>^```.+?\n```$)
  | (?P<inline_code>^.*`\n*.+?\n*`$)
  | (?P<html>^<[^>]+?>\n.+?\n</[^>]+?>$)
  | (?P<quote>^>>>.+?\n>>>$)
  | (?:^/(?P<cmd>labels|label|unlabel|remove_label|confidential|close|reopen|assign)
       (?:[ ](?P<arg>[^\n]*))?(?:\s*\n|$))
""", re.M | re.S | re.I | re.X)


class IssueWrites:
    state: dict
    edition: str

    def ensure_labels(self, project: dict, user: dict, names: list[str]) -> list[str]:
        """The names that exist or that `user` may create: GitLab creates unknown labels on the fly (typos
        become labels) only for users with `create_label` (Reporter+); for others an unknown name is dropped
        (`Labels::FindOrCreateService#find_or_create_label`)."""
        known = {lb["name"] for lb in self.available_labels(project)}
        may_create = self.access(project, user) >= REPORTER
        kept = []
        for name in names:
            if name not in known and may_create:
                project["labels"].append({"id": self.next_id("label"), "name": name, "color": "#6699cc",
                                          "description": None})
                known.add(name)
            if name in known:
                kept.append(name)
        return kept

    def system_note(self, issue: dict, user: dict, body: str) -> None:
        now = _now()
        issue["notes"].append({"id": self.next_id("note"), "body": body, "author_id": user["id"], "system": True,
                               "created_at": now, "updated_at": now})

    def set_labels(self, project: dict, issue: dict, user: dict, labels: list[str]) -> None:
        added = [lb for lb in labels if lb not in issue["labels"]]
        removed = [lb for lb in issue["labels"] if lb not in labels]
        # Scoped labels: a new `a::b` replaces any other `a::*` on the issue, on paid tiers only
        # (docs: user/project/labels, "Scoped labels": Premium and Ultimate). On Free both stay.
        for new in added if self.edition == "premium" else ():
            if "::" in new:
                scope = new.rsplit("::", 1)[0]
                labels = [lb for lb in labels if lb == new or not (lb.startswith(scope + "::")
                                                                   and lb.count("::") == new.count("::"))]
        kept = self.ensure_labels(project, user, added)
        labels = [lb for lb in labels if lb not in added or lb in kept]
        added = kept
        now = _now()
        available = self.available_labels(project)
        for name, action in [(a, "add") for a in added] + [(r, "remove") for r in removed]:
            label = next((lb for lb in available if lb["name"] == name), {"id": 0, "name": name})
            issue.setdefault("label_events", []).append({
                "id": self.next_id("note"), "user_id": user["id"], "created_at": now, "action": action,
                "label": {"id": label["id"], "name": name}})
        if added or removed:
            parts = []
            if added:
                parts.append("added " + " ".join(f"~\"{a}\"" for a in added))
            if removed:
                parts.append("removed " + " ".join(f"~\"{r}\"" for r in removed))
            self.system_note(issue, user, " ".join(parts) + " label" + ("s" if len(added + removed) > 1 else ""))
        issue["labels"] = labels

    def apply_quick_actions(self, project: dict, user: dict, description: str, issue: dict, *,
                            new_issue: bool = True) -> str:
        """Quick actions in a new issue's description, a description edit, a note or a note edit, run as the
        poster with the poster's permissions, as GitLab runs them (`Notes::CreateService`,
        `Notes::UpdateService`, `Issues::UpdateService` through `QuickActions::InterpretService`).

        Where a command counts is GitLab's `Gitlab::QuickActions::Extractor`: `/cmd` at the very start of a
        line (after `\r` is deleted), not inside a fenced code block, an HTML block or a `>>>` quote block;
        a command's text is removed. On a new issue any project member, Guests included, may set labels,
        assignees and confidentiality (IssuePolicy `set_issue_metadata` for `is_project_member &
        guest_access` on new issues); on an existing issue that needs Reporter (`admin_issue`), and closing
        or reopening needs the author or Reporter (`update_issue`); a command the poster may not run is
        dropped silently. `/label` applies only labels that exist; a quick action that applies nothing
        stays in the text (QuickActions docs)."""
        may_set = new_issue or self.access(project, user) >= REPORTER
        may_update = new_issue or issue["author_id"] == user["id"] or self.access(project, user) >= REPORTER

        def run(match: re.Match) -> str:
            if match.group("cmd") is None:
                return match.group(0)  # a code, HTML or quote block: GitLab leaves it alone
            cmd, arg = match.group("cmd").lower(), (match.group("arg") or "").strip()
            if cmd in ("label", "labels", "unlabel", "remove_label"):
                names = [a or b for a, b in re.findall(r'~"([^"]+)"|~(\S+)', arg)]
                known = {lb["name"] for lb in self.available_labels(project)}
                existing = [name for name in names if name in known]
                if not existing:
                    return match.group(0)
                if may_set and cmd in ("label", "labels"):
                    self.set_labels(project, issue, user, issue["labels"] + [n for n in existing
                                                                              if n not in issue["labels"]])
                elif may_set:
                    self.set_labels(project, issue, user, [lb for lb in issue["labels"] if lb not in existing])
                return ""
            if cmd == "confidential":
                if may_set and not issue["confidential"]:
                    issue["confidential"] = True
                    if not new_issue:
                        self.system_note(issue, user, "made the issue confidential")
                return ""
            if cmd in ("close", "reopen"):
                if may_update and not new_issue:
                    self.change_state(issue, user, cmd)
                return ""
            # /assign
            who = arg.split() or ["me"]
            targets = [user if name == "me" else next(
                (u for u in self.state["users"] if u["username"] == name.lstrip("@")), None) for name in who]
            targets = [t for t in targets if t and self.access(project, t) >= GUEST]
            if not targets:
                return match.group(0)
            if may_set:
                self.assign(issue, issue["assignee_ids"] + [t["id"] for t in targets
                                                             if t["id"] not in issue["assignee_ids"]])
            return ""

        text = _QUICK_ACTIONS.sub(run, (description or "").replace("\r", ""))
        return text.rstrip().strip("\n")

    def change_state(self, issue: dict, user: dict, event: str) -> None:
        if event == "close" and issue["state"] == "opened":
            issue["state"], issue["closed_at"] = "closed", _now()
            self.system_note(issue, user, "closed")
        elif event == "reopen" and issue["state"] == "closed":
            issue["state"], issue["closed_at"] = "opened", None
            self.system_note(issue, user, "reopened")

    def assign(self, issue: dict, ids: list[int]) -> None:
        """Several assignees on paid tiers; GitLab Free keeps only the first (docs: "Multiple assignees")."""
        issue["assignee_ids"] = ids if self.edition == "premium" else ids[:1]

    def create_issue(self, project: dict, user: dict, data: dict) -> dict:
        self.require(project, user, GUEST)
        title = (data.get("title") or "").strip()
        if not title:
            raise ApiError(400, {"title": ["can't be blank"]})
        now = _now()
        iid = len(project["issues"]) + project.get("deleted_issues", 0) + 1  # a deleted issue's iid is never reused
        issue = {"id": 1000 + self.next_id("issue"), "iid": iid, "title": title,
                 "description": "", "state": "opened", "labels": [], "author_id": user["id"],
                 "confidential": bool(data.get("confidential")), "assignee_ids": [], "created_at": now,
                 "updated_at": now, "closed_at": None, "notes": []}
        if data.get("labels"):  # any member who may create the issue may label it (see apply_quick_actions)
            self.set_labels(project, issue, user, _label_list(data["labels"]))
        if data.get("assignee_ids"):
            self.assign(issue, [i for i in _id_list("assignee_ids", data["assignee_ids"]) if i > 0])
        issue["description"] = self.apply_quick_actions(project, user, data.get("description") or "", issue)
        issue["notes"] = [n for n in issue["notes"] if not n["system"]]  # creation is one event in GitLab
        project["issues"].append(issue)
        return issue

    def edit_issue(self, project: dict, issue: dict, user: dict, data: dict) -> dict:
        # Its author and assignees may update an issue (IssuablePolicy `assignee_or_author`), others need
        # Reporter. Only Reporters may set metadata on an existing issue (IssuePolicy `set_issue_metadata`
        # for `persisted & admin_issue`); for anyone else GitLab drops labels, assignees and confidentiality
        # from the request and answers 200 (`IssuableBaseService#filter_params`).
        if issue["author_id"] != user["id"] and user["id"] not in issue["assignee_ids"]:
            self.require(project, user, REPORTER)
        if self.access(project, user) < REPORTER:
            metadata = ("labels", "add_labels", "remove_labels", "assignee_ids", "assignee_id", "confidential")
            data = {k: v for k, v in data.items() if k not in metadata}
        if "title" in data:
            if not str(data["title"]).strip():
                raise ApiError(400, {"title": ["can't be blank"]})
            if data["title"] != issue["title"]:
                self.system_note(issue, user, f"changed title from **{issue['title']}** to **{data['title']}**")
                issue["title"] = data["title"]
        if "description" in data and (data["description"] or "") != issue["description"]:
            # GitLab notes each description edit as a system note by the editor ("changed the description",
            # `SystemNotes::IssuablesService#change_description`), and runs the new text's quick actions.
            self.system_note(issue, user, "changed the description")
            issue["description"] = self.apply_quick_actions(project, user, data["description"] or "", issue,
                                                            new_issue=False)
        labels = list(issue["labels"])
        if "labels" in data:
            labels = _label_list(data["labels"])
        labels += [lb for lb in _label_list(data.get("add_labels")) if lb not in labels]
        labels = [lb for lb in labels if lb not in _label_list(data.get("remove_labels"))]
        if labels != issue["labels"]:
            self.set_labels(project, issue, user, labels)
        if "confidential" in data:
            issue["confidential"] = _bool(data["confidential"])
        if "assignee_ids" in data:
            self.assign(issue, [i for i in _id_list("assignee_ids", data["assignee_ids"]) if i > 0])
        if data.get("state_event") in ("close", "reopen"):
            self.change_state(issue, user, data["state_event"])
        issue["updated_at"] = _now()
        return issue
