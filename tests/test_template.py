"""The request template as engineers meet it (issue 18, "The template"): one unambiguous name for the expired
license's date, and hints that read well where GitLab shows them.

GitLab facts this pins (gitlabhq/gitlabhq):
- The rich text editor shows an HTML comment as its own block in grey italics inside a dashed box:
  app/assets/javascripts/content_editor/extensions/html_comment.js (node `htmlComment`, parsed from the
  comment) and app/assets/javascripts/content_editor/components/wrappers/html_comment.vue
  (`gl-italic gl-text-secondary`). The plain Markdown editor is a textarea: there the comment shows as typed,
  so each hint is one line that starts "Hint:" and reads as a sentence.
- The rendered issue does not show HTML comments (CommonMark: an HTML block of type 2, kept as raw HTML, which
  a browser does not display), so a filled request shows only its values.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

from bot import messages, request, resources
from bot.demo import fill_template

TEMPLATE = resources.issue_template().read_text(encoding="utf-8")


def test_the_date_field_names_the_customers_expired_license_not_the_new_one():
    # Finding: "License expiration date" can be read as the new license's date.
    assert "### Expiry date of the customer's expired license\n" in TEMPLATE
    assert "License expiration date" not in TEMPLATE
    assert request.HEADINGS["expired_on"] == "### Expiry date of the customer's expired license"
    assert messages.FIELD_NAMES["expired_on"] == "Expiry date of the customer's expired license"  # notes say it so


def test_each_field_has_a_one_line_hint_under_its_heading_and_the_intro_does_not_call_them_grey():
    # Finding: the intro called the hints grey, but the plain editor shows them as raw <!-- -->.
    assert "grey" not in TEMPLATE.lower()
    for heading in (*request.HEADINGS.values(), "### Notes"):
        after = TEMPLATE.split(heading + "\n", 1)[1].split("\n", 1)[0]
        assert re.fullmatch(r"<!-- Hint: [^\n]+ -->", after), (heading, after)


def test_the_rendered_issue_shows_no_hint_and_a_filled_template_reads_back():
    tokens = MarkdownIt("commonmark").parse(TEMPLATE)
    shown = " ".join(t.content for t in tokens if t.type == "inline")
    assert "Hint" not in shown and "License Bot reads this issue" not in shown
    assert all(t.content.lstrip().startswith("<!--") for t in tokens if t.type == "html_block")
    parsed = request.parse(fill_template("512345", "jane@example.com", "250", "2026-11-12"))
    assert not parsed.errors and parsed.request.expired_on.isoformat() == "2026-11-12"
    # Issues filed from the old template still read.
    old = fill_template("512345", "jane@example.com", "250", "2026-11-12").replace(
        "### Expiry date of the customer's expired license", "### License expiration date")
    assert request.parse(old).request.expired_on.isoformat() == "2026-11-12"
