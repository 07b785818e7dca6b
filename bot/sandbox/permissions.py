"""Who may see and do what: roles, groups and membership, as GitLab decides them.

GitLab facts mirrored: a project member's role is the highest of a direct membership and one inherited
through the project's group, its ancestors and groups shared with them (capped at the share's level);
`members/all` answers for inherited and shared members, `members/:id` for direct ones only (Group and
project members API); a private group is readable by its members of any kind and by members of projects
inside it, and answers 404 to everyone else (GroupPolicy); confidential issues are visible to their
author, their assignees and to Reporters and above (IssuePolicy, `Issue#readable_by?`).
"""

from __future__ import annotations

from .store import GUEST, OWNER, PLANNER, ApiError


class Permissions:
    state: dict

    def group_by_ref(self, ref: str) -> dict | None:
        return next((g for g in self.state["groups"] if ref in (str(g["id"]), g["full_path"])), None)

    def group_members_all(self, group: dict) -> dict[str, int]:
        """`members/all`: direct members, members inherited from ancestor groups, and members of groups
        this group is shared with (capped at the share's access level), each at their highest level."""
        levels: dict[str, int] = {}

        def merge(members: dict[str, int], cap: int = OWNER) -> None:
            for uid, lvl in members.items():
                levels[uid] = max(levels.get(uid, 0), min(lvl, cap))
        g: dict | None = group
        while g is not None:
            merge(g["members"])
            for share in g.get("shared_with_groups", ()):
                invited = next(x for x in self.state["groups"] if x["id"] == share["group_id"])
                merge(invited["members"], share["group_access_level"])
            g = next((x for x in self.state["groups"] if x["id"] == g.get("parent_id")), None)
        return levels

    def can_read_group(self, group: dict, user: dict) -> bool:
        """Public and internal groups are readable by any signed-in user; a private group by its members
        (any kind) and by members of projects inside it (GitLab's GroupPolicy `has_projects`)."""
        if group["visibility"] in ("public", "internal") or str(user["id"]) in self.group_members_all(group):
            return True
        return any(p["group_id"] == group["id"] and str(user["id"]) in p["members"] for p in self.state["projects"])

    def group_members_readable(self, group: dict, user: dict) -> dict:
        """A group whose members the user may read: `read_group_member` needs `read_group` and is denied on
        a private group to anyone without access to the group itself (GroupPolicy `can_read_group_member?`:
        `!(private? && access_level == NO_ACCESS)`), so a member of a project inside it (a project access
        token's user, say) reads the group but is answered 403 for its members."""
        if group["visibility"] == "private" and str(user["id"]) not in self.group_members_all(group):
            raise ApiError(403, "403 Forbidden")
        return group

    def group(self, ref: str, user: dict) -> dict:
        g = self.group_by_ref(ref)
        if g is None or not self.can_read_group(g, user):
            raise ApiError(404, "404 Group Not Found")  # private groups do not exist for outsiders
        return g

    def project_group_members(self, project: dict) -> dict[str, int]:
        """Members a project inherits through its group (and that group's ancestors and shares)."""
        group = next((g for g in self.state["groups"] if g["id"] == project.get("group_id")), None)
        return self.group_members_all(group) if group else {}

    def access(self, project: dict, user: dict) -> int:
        direct = project["members"].get(str(user["id"]), 0)
        group = next((g for g in self.state["groups"] if g["id"] == project.get("group_id")), None)
        inherited = self.group_members_all(group).get(str(user["id"]), 0) if group else 0
        return max(direct, inherited)

    def project(self, ref: str, user: dict) -> dict:
        for p in self.state["projects"]:
            if ref in (str(p["id"]), p["path_with_namespace"]):
                if p["visibility"] == "public" or self.access(p, user) >= GUEST:
                    return p
                break  # private: outsiders are told it does not exist, as GitLab does
        raise ApiError(404, "404 Project Not Found")

    def issue(self, project: dict, iid: str, user: dict) -> dict:
        for i in project["issues"]:
            if str(i["iid"]) == iid and self.can_see(project, i, user):
                return i
        raise ApiError(404, "404 Issue Not Found")

    def can_see(self, project: dict, issue: dict, user: dict) -> bool:
        """A confidential issue: its author, its assignees and Reporters and up (`Issue#readable_by?`:
        `assignee_or_author?`; IssuePolicy `can_read_confidential`; ProjectPolicy: planner_access and
        reporter_access both enable read_confidential_issues). Guests of a project and up see others."""
        if not issue["confidential"]:
            return project["visibility"] == "public" or self.access(project, user) >= GUEST
        return user["id"] == issue["author_id"] or user["id"] in issue["assignee_ids"] or \
            self.access(project, user) >= PLANNER

    def require(self, project: dict, user: dict, level: int) -> None:
        if self.access(project, user) < level:
            raise ApiError(403, "403 Forbidden")
