"""Project and group labels as GitLab keeps them: one row per label, referred to by id.

GitLab facts mirrored (gitlabhq/gitlabhq):
- A project's available labels are its own and those of its group and the group's ancestors
  (`available_labels_for`, `LabelsFinder` with `include_ancestor_groups: true`): project label lists and
  single-label GETs show group labels, and creating a project label whose name an available label has
  answers 409 "Label already exists" (`lib/api/helpers/label_helpers.rb#create_label`).
- Renaming (`PUT …/labels/:name` with `new_name`) and deleting look at the parent's own labels only
  (`find_label(…, include_ancestor_groups: false)` in `update_label` and `delete_label`): a group label is
  404 through the project's routes.
- `resource_label_events` rows point at the label row (`label_id`, `on_delete: :nullify` in the
  CreateResourceLabelEvents migration) and the API shows it through `Entities::LabelBasic`
  (`lib/api/entities/resource_label_event.rb`): past events show the label's current name, and `null`
  once it is deleted.
"""

from __future__ import annotations

from .store import ApiError


class Labels:
    state: dict

    def group_chain(self, group_id: int | None) -> list[dict]:
        """The group and its ancestors, nearest first."""
        chain = []
        g = next((x for x in self.state["groups"] if x["id"] == group_id), None)
        while g is not None:
            chain.append(g)
            g = next((x for x in self.state["groups"] if x["id"] == g.get("parent_id")), None)
        return chain

    def available_labels(self, project: dict) -> list[dict]:
        """The project's own labels, then its groups' (as `available_labels_for` lists them)."""
        return list(project["labels"]) + [lb for g in self.group_chain(project.get("group_id"))
                                          for lb in g.setdefault("labels", [])]

    def find_label(self, labels: list[dict], ref: str) -> dict:
        """By id first, then by title (`find_label`: `find_by_id(id_or_title) || find_by_title`)."""
        found = next((lb for lb in labels if str(lb["id"]) == ref), None) or \
            next((lb for lb in labels if lb["name"] == ref), None)
        if found is None:
            raise ApiError(404, "404 Label Not Found")
        return found

    def label_row(self, label_id: int) -> dict | None:
        """The label's current row, wherever it lives, or None once deleted."""
        every = [lb for p in self.state["projects"] for lb in p["labels"]] + \
            [lb for g in self.state["groups"] for lb in g.get("labels", [])]
        return next((lb for lb in every if lb["id"] == label_id), None)

    def projects_seeing(self, owner: dict, is_group: bool) -> list[dict]:
        """The projects whose issues can carry a label of `owner` (a project, or a group and its subgroups)."""
        if not is_group:
            return [owner]
        return [p for p in self.state["projects"]
                if any(g["id"] == owner["id"] for g in self.group_chain(p.get("group_id")))]

    def rename_label(self, owner: dict, is_group: bool, label: dict, data: dict) -> dict:
        """`PUT …/labels/:name`: new_name, color, description (at least one, Grape's `at_least_one_of`)."""
        if not any(data.get(k) not in (None, "") for k in ("new_name", "color", "description")):
            fields = "new_name, color, description" + (", archived" if is_group else ", priority, archived")
            raise ApiError(400, f"{fields} are missing, at least one parameter must be provided",
                           body={"error": f"{fields} are missing, at least one parameter must be provided"})
        new_name = (data.get("new_name") or "").strip()
        if new_name and new_name != label["name"]:
            if any(lb["name"] == new_name for lb in owner["labels"]):
                raise ApiError(400, {"title": ["has already been taken"]})
            old = label["name"]
            for project in self.projects_seeing(owner, is_group):
                for issue in project["issues"]:
                    issue["labels"] = [new_name if name == old else name for name in issue["labels"]]
            label["name"] = new_name
        if data.get("color"):
            label["color"] = data["color"]
        if "description" in data:
            label["description"] = data["description"] or None
        return label

    def remove_label(self, owner: dict, is_group: bool, label: dict) -> None:
        """Delete the row: issues lose it, and past events now show `label: null`."""
        owner["labels"].remove(label)
        for project in self.projects_seeing(owner, is_group):
            for issue in project["issues"]:
                if label["name"] in issue["labels"] and not any(
                        lb["name"] == label["name"] for lb in self.available_labels(project)):
                    issue["labels"].remove(label["name"])

    def label_json(self, label: dict, project: dict | None = None) -> dict:
        """Entities::ProjectLabel / GroupLabel (the fields a client reads)."""
        out = {"id": label["id"], "name": label["name"], "color": label["color"],
               "description": label.get("description"), "text_color": "#FFFFFF", "subscribed": False,
               "priority": None}
        if project is not None:
            out["is_project_label"] = any(lb["id"] == label["id"] for lb in project["labels"])
        return out

    def label_event_json(self, event: dict) -> dict | None:
        """Entities::LabelBasic of the label's *current* row (None when it was deleted)."""
        row = self.label_row(event["label"]["id"])
        if row is None:
            return None
        return {"id": row["id"], "name": row["name"], "color": row["color"], "description": row.get("description"),
                "description_html": row.get("description") or "", "text_color": "#FFFFFF"}
