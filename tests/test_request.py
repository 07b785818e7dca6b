"""The request parser and the offline policy over a corpus of realistic, sloppy and hostile requests."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from bot import policy, request
from bot.request import FIELDS, parse

from .conftest import DATA, TODAY

CORPUS = DATA / "requests"
EXPECTED = yaml.safe_load((CORPUS / "expected.yaml").read_text())
TEMPLATE = (Path(__file__).resolve().parent.parent / "templates" / "Emergency License Request.md").read_text()


def judge(text: str, config, today: date = TODAY) -> policy.Verdict:
    return policy.evaluate(parse(text, config.tickets.base_url), today, config.policy, config.tickets)


def test_every_corpus_document_has_an_expectation():
    assert sorted(p.name for p in CORPUS.glob("*.md")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus(name, config):
    verdict = judge((CORPUS / name).read_text(encoding="utf-8"), config)
    expected = EXPECTED[name]
    if "request" in expected:
        assert verdict.errors == ()
        got = verdict.request
        assert {"ticket_id": got.ticket_id, "email": got.email, "user_count": got.user_count,
                "expired_on": got.expired_on} == expected["request"]
        assert got.ticket_url.startswith("https://gitlab.zendesk.com/agent/tickets/512345")
    else:
        assert [e.field for e in verdict.errors] == expected["errors"]
        for error in verdict.errors:
            assert error.field in (*FIELDS, "author") and len(error.message) > 20


# --- the template --------------------------------------------------------------------------------------

def test_template_has_the_marker_the_fields_and_the_quick_actions():
    assert request.FORM_MARKER in TEMPLATE
    for heading in request.HEADINGS.values():
        assert f"\n{heading}\n" in TEMPLATE
    assert "### Notes" in TEMPLATE and '/label ~"license-request"' in TEMPLATE and "/confidential" in TEMPLATE
    assert "Maximum users" in TEMPLATE and "YYYY-MM-DD" in TEMPLATE
    assert TEMPLATE.count("- [ ]") == 2
    assert "requester" not in TEMPLATE.split("### Zendesk ticket")[1].lower()  # the author is never a typed field


def test_marker_is_recognised_only_outside_code_blocks():
    assert parse(TEMPLATE).has_form_marker
    assert not parse("```\n<!-- license-bot:request-form v1 -->\n```\n").has_form_marker


# --- the formats people write -------------------------------------------------------------------------

def _doc(ticket="512345", email="jane@example.com", users="250", expired="2026-11-13") -> str:
    return (f"### Zendesk ticket\n{ticket}\n### Customer email\n{email}\n### User count\n{users}\n"
            f"### License expiration date\n{expired}\n### Checklist\n- [x] paid plan\n- [x] screenshots\n")


@pytest.mark.parametrize("text,count", [("1,250", 1250), ("1250 users", 1250), ("1_250", 1250), ("250.", 250),
                                        ("**250**", 250), ("250 seats", 250), ("100,000", 100_000)])
def test_user_count_formats(text, count):
    assert parse(_doc(users=text)).request.user_count == count


@pytest.mark.parametrize("field,text,hedge", [
    ("user_count", "about 300 <maybe>", "about"), ("user_count", "approx. 250", "approx"), ("user_count", "~250", "~"),
    ("user_count", "250?", "?"), ("user_count", "maybe 250", "maybe"), ("user_count", "250 or so", "or"),
    ("expired_on", "2026-11-12?", "?"), ("expired_on", "around 12 Nov 2026", "around"),
    ("expired_on", "2026-11-12 or 2026-11-13", "or")])
def test_a_hedged_count_or_date_is_refused_naming_the_value(field, text, hedge):
    doc = _doc(users=text) if field == "user_count" else _doc(expired=text)
    parsed = parse(doc)
    assert parsed.request is None
    (error,) = [e for e in parsed.errors if e.field == field]
    assert f"`{text}` is not exact (`{hedge}`)" in error.message and "does not guess" in error.message


@pytest.mark.parametrize("text", ["1,25", "2.5k", "twelve", "25 + 5", "-"])
def test_user_count_refusals_name_the_field(text):
    result = parse(_doc(users=text))
    assert result.request is None and [e.field for e in result.errors] == ["user_count"]


@pytest.mark.parametrize("text,email", [
    ("<a@b.co>", "a@b.co"), ("[a@b.co](mailto:a@b.co)", "a@b.co"), ("mailto:a@b.co", "a@b.co"),
    ("Jane <jane+ops@Example.COM>", "jane+ops@example.com"), ("a@b.co.", "a@b.co"), ("`a@b.co`", "a@b.co"),
    # Only the sentence's period is trimmed, never the address's own letters.
    ("Xena.X@Example.COM.", "Xena.X@example.com"),
])
def test_email_formats(text, email):
    assert parse(_doc(email=text)).request.email == email


@pytest.mark.parametrize("text,day", [
    ("2026-11-12", date(2026, 11, 12)), ("2026/11/12", date(2026, 11, 12)), ("12 Nov 2026", date(2026, 11, 12)),
    ("November 12, 2026", date(2026, 11, 12)), ("Nov. 12th 2026", date(2026, 11, 12)),
    ("12-November-2026", date(2026, 11, 12)), ("12 Sept 2026", date(2026, 9, 12)),
    ("2026-11-12T00:00:00Z", date(2026, 11, 12)), ("expired 1 May 2026", date(2026, 5, 1)),
])
def test_date_formats(text, day):
    assert parse(_doc(expired=text)).request.expired_on == day


@pytest.mark.parametrize("text", ["11/12/2026", "12.11.2026", "11-12-26"])
def test_numeric_day_month_dates_are_refused_as_ambiguous_with_a_hint(text):
    errors = parse(_doc(expired=text)).errors
    assert [e.field for e in errors] == ["expired_on"]
    assert "ambiguous" in errors[0].message and "YYYY-MM-DD" in errors[0].message


@pytest.mark.parametrize("text,url", [
    ("512345", "https://gitlab.zendesk.com/agent/tickets/512345"),
    ("#512345", "https://gitlab.zendesk.com/agent/tickets/512345"),
    ("https://gitlab.zendesk.com/agent/tickets/512345", "https://gitlab.zendesk.com/agent/tickets/512345"),
    ("<https://gitlab.zendesk.com/agent/tickets/512345>", "https://gitlab.zendesk.com/agent/tickets/512345"),
])
def test_ticket_formats(text, url):
    got = parse(_doc(ticket=text)).request
    assert (got.ticket_url, got.ticket_id) == (url, 512345)


def test_bare_ticket_numbers_use_the_configured_base_url():
    result = parse(_doc(), "https://support.example.com/")
    # Both the URL the bot writes and the one the policy checks, without a doubled slash.
    assert (result.request.ticket_url, result.ticket_url) == ("https://support.example.com/agent/tickets/512345",) * 2


def test_when_the_ticket_fails_the_other_fields_are_still_reported():
    """Every rule is checked even when one field did not parse: the policy still sees the count and the date."""
    result = parse(_doc(ticket="none"))
    assert (result.request, result.email, result.user_count, result.expired_on) == (
        None, "jane@example.com", 250, date(2026, 11, 13))


def test_a_request_filed_from_the_template_says_it_has_the_form_marker():
    result = parse(f"<!-- {request.FORM_MARKER} v1 -->\n" + _doc())
    assert result.request is not None and result.has_form_marker is True


def test_a_description_that_is_not_text_reads_as_an_empty_one():
    """The tracker already turns a null description into "" (Issue.from_api); any other caller's None is read the
    same way, never raised on."""
    assert parse(None) == parse("")


def test_an_oversized_field_still_reports_the_checklist_and_no_marker_it_does_not_have():
    result = parse(_doc(users="x" * 2001))
    assert (result.request, result.has_form_marker, result.checklist) == (
        None, False, request.Checklist(paid_plan=True, screenshots=True))


def test_a_description_without_fields_has_an_empty_checklist_not_none():
    assert parse("just text").checklist == request.Checklist()


def test_all_errors_are_reported_at_once():
    result = parse(_doc(ticket="none", email="nobody", users="lots", expired="11/12/2026"))
    assert [e.field for e in result.errors] == ["ticket", "email", "user_count", "expired_on"]


def test_user_text_in_messages_is_inline_code_so_it_cannot_mention_or_link():
    errors = parse(_doc(users="@all [x](http://evil.example) `tick`")).errors
    message = errors[0].message
    assert "`@all [x](http://evil.example) 'tick'`" in message


def test_quick_action_lines_are_not_content():
    assert parse(_doc() + "### Notes\n/label ~x\n/confidential\nreal note\n").request.notes == "real note"


# --- hypothesis: it never raises, and it reads what was written -----------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from .properties import examples  # noqa: E402

_SETTINGS = settings(max_examples=examples(3000), deadline=None, suppress_health_check=[HealthCheck.too_slow])
_GOOD = [(CORPUS / n).read_text(encoding="utf-8") for n in sorted(EXPECTED) if "request" in EXPECTED[n]]
_PIECES = ["### ", "## ", "#", "```", "~~~", "<!--", "-->", "- [x] ", "- [ ] ", "**", ":", "\r\n", "\n", "@",
           "mailto:", "https://gitlab.zendesk.com/agent/tickets/", "Email: ", "User count: ", "2026-11-13",
           "11/12/2026", "1,250", "Customer email", "Zendesk ticket", "\u0430", "\x00", "[", "](", ")"]


@_SETTINGS
@given(st.text(max_size=2000))
def test_never_raises_on_random_text(text):
    result = parse(text)
    assert (result.request is None) == bool(result.errors)
    assert all(e.field in FIELDS for e in result.errors)


@_SETTINGS
@given(st.lists(st.one_of(st.sampled_from(_PIECES), st.text(max_size=30)), max_size=80).map("".join))
def test_never_raises_on_markdown_shaped_noise(text):
    result = parse(text)
    assert all(e.field in FIELDS for e in result.errors)


@st.composite
def mutated(draw):
    lines = draw(st.sampled_from(_GOOD)).split("\n")
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["insert", "delete", "swap", "upper", "piece"]))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "insert":
            lines.insert(i, draw(st.text(max_size=40)))
        elif op == "delete" and lines:
            lines.pop(i)
        elif op == "swap" and len(lines) > 1:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "upper" and lines:
            lines[i] = lines[i].upper()
        elif op == "piece":
            lines.insert(i, draw(st.sampled_from(_PIECES)))
    return "\n".join(lines)


@_SETTINGS
@given(mutated())
def test_never_raises_on_mutated_real_requests(text):
    result = parse(text)
    assert (result.request is None) == bool(result.errors)
    assert all(e.field in FIELDS for e in result.errors)


_emails = st.from_regex(r"[a-z][a-z0-9._+-]{0,15}@[a-z][a-z0-9-]{0,10}\.(com|org|co\.uk|io)", fullmatch=True)
_headings = st.sampled_from(["### {}", "## {}", "# {}:", "#### {} ", "**{}:**", "{}:"])


@_SETTINGS
@given(ticket=st.integers(1, 10**9), email=_emails, users=st.integers(1, 10**6),
       expired=st.dates(date(2000, 1, 1), date(2099, 12, 31)), style=_headings, crlf=st.booleans(),
       grouped=st.booleans(), fenced_decoy=st.booleans())
def test_reads_back_exactly_what_was_written(ticket, email, users, expired, style, crlf, grouped, fenced_decoy):
    count = f"{users:,}" if grouped else str(users)
    inline = not style.startswith("#")
    parts = [("Zendesk ticket", str(ticket)), ("Customer email", email), ("User count", count),
             ("License expiration date", expired.isoformat())]
    text = "".join((style.format(name) + " " + value + "\n") if inline else (style.format(name) + "\n" + value + "\n\n")
                   for name, value in parts)
    if fenced_decoy:
        text += "### Notes\n```\n### Customer email\ndecoy@evil.example\nUser count: 7\n```\n"
    if crlf:
        text = text.replace("\n", "\r\n")
    got = parse(text).request
    assert got is not None
    assert (got.ticket_id, got.email, got.user_count, got.expired_on) == (ticket, email, users, expired)


def test_the_template_holds_no_ticket_number():
    """Duplicate lookups search descriptions for the ticket number: an example number in the template's
    hint would make every request match that ticket."""
    assert not re.search(r"\d{3,}", re.sub(r"YYYY-MM-DD", "", TEMPLATE.split("### Zendesk ticket")[1]
                                            .split("### Customer email")[0]))


# --- issue 22: rules whose breaking no test noticed (mutation testing) ----------------------------------------

@pytest.mark.parametrize("quoted", [
    "> ### User count\n> 9999\n",                                   # a quoted heading and its value
    "> User count: 9999\n",                                         # a quoted field line
    "> Earlier request:\nUser count: 9999\n",                       # a lazy line continues the quote's paragraph
    "> > ### User count\n> > 9999\n",                               # nested quotes
    "Someone wrote:\n> User count: 9999\n",                         # a quote that interrupts a paragraph
])
def test_fields_inside_a_quote_are_not_read(quoted):
    """Issue 22: with blockquote detection off, the fields in a quoted earlier request (a reply quoting another
    issue) were read, so its user count stood beside the real one. GitLab renders `>` lines as a blockquote
    (CommonMark, which GitLab Flavored Markdown builds on): the reader sees them as quoted, not as the form."""
    result = parse(quoted + "\n" + _doc())
    assert result.errors == () and result.request.user_count == 250


def test_a_quoted_form_alone_is_no_request():
    result = parse("> ### User count\n> 250\n> ### Customer email\n> jane@example.com\n")
    assert [(e.field, e.message) for e in result.errors] == [
        ("form", "no request fields found: fill in the Emergency License Request template (ticket, customer email, "
                 "user count, license expiration date, checklist)")]


@pytest.mark.parametrize("text", ["", "Please send a license, thanks!\n", "### Notes\nplease hurry\n",
                                  "### Checklist\n\n### Zendesk ticket\n\n"])
def test_a_description_without_any_field_is_said_to_be_no_form(text):
    """Issue 22: an empty form (no field filled in, the label aside) must get the one "no request fields" message,
    not four "missing" ones nor silence."""
    result = parse(text)
    assert result.request is None
    assert [(e.field, e.message) for e in result.errors] == [
        ("form", "no request fields found: fill in the Emergency License Request template (ticket, customer email, "
                 "user count, license expiration date, checklist)")]


@pytest.mark.parametrize("text, day", [("2000-01-01", date(2000, 1, 1)), ("2099-12-31", date(2099, 12, 31)),
                                       ("31 Dec 2099", date(2099, 12, 31))])
def test_the_first_and_last_plausible_expiry_years_are_read(text, day):
    """Issue 22: the 2000-2099 boundary was untested (`<=` -> `<` would refuse 2099)."""
    assert parse(_doc(expired=text)).request.expired_on == day


@pytest.mark.parametrize("text", ["1999-12-31", "2100-01-01", "1 Jan 2100", "Dec 31, 1999"])
def test_an_expiry_year_outside_2000_to_2099_is_refused_naming_it(text):
    result = parse(_doc(expired=text))
    assert [(e.field, e.message) for e in result.errors] == [
        ("expired_on", f"`{text}` is not a plausible expiration date; write the date from the customer's screenshot "
                       "as YYYY-MM-DD")]


def test_a_date_that_does_not_exist_is_refused_naming_it():
    result = parse(_doc(expired="2026-02-30"))
    assert [(e.field, e.message) for e in result.errors] == [
        ("expired_on", "`2026-02-30` is not a real date; write it as YYYY-MM-DD")]


_T = "https://gitlab.zendesk.com/agent/tickets/"


@pytest.mark.parametrize("field, text, says", [
    ("email", "a@b.co c@d.co", "found 2 different email addresses (`a@b.co`, `c@d.co`); keep exactly one under "
                               "### Customer email"),
    ("email", "nobody", "no email address found in `nobody`; write the customer's address, e.g. jane@example.com"),
    ("email", "", "missing: write the customer's email address under ### Customer email, e.g. jane@example.com"),
    ("ticket", "none", "no ticket URL or number found in `none`; write the Zendesk ticket's URL "
                       "(…/agent/tickets/NUMBER) or its number"),
    ("ticket", "", "missing: write the Zendesk ticket's URL or number under ### Zendesk ticket, e.g. "
                   "https://gitlab.zendesk.com/agent/tickets/512345"),
    ("ticket", "1 2 3 4 5", f"found 5 different tickets (`{_T}1`, `{_T}2`, `{_T}3`, `{_T}4`); keep exactly one "
                            "under ### Zendesk ticket"),
    ("ticket", "https://gitlab.zendesk.com/agent/", "`https://gitlab.zendesk.com/agent/` has no ticket number in it; "
                                                    "paste the ticket's URL (…/agent/tickets/512345) or just its "
                                                    "number"),
    # A placeholder left in (the template's example ticket with X for digits) is quoted whole, letters and all.
    ("ticket", "gitlab.zendesk.com/agent/tickets/XXXXXX", f"`{_T}XXXXXX` has no ticket number in it; paste the "
                                                          "ticket's URL (…/agent/tickets/512345) or just its number"),
    ("ticket", f"{_T}XXXXXX", f"`{_T}XXXXXX` has no ticket number in it; paste the ticket's URL "
                              "(…/agent/tickets/512345) or just its number"),
    # One URL without a number, in two letter cases, is one error; a long one is cut at 100 characters.
    ("ticket", "https://gitlab.zendesk.com/agent/ HTTPS://GITLAB.ZENDESK.COM/agent/",
     "`https://gitlab.zendesk.com/agent/` has no ticket number in it; paste the ticket's URL (…/agent/tickets/512345) "
     "or just its number"),
    ("ticket", "https://a.example/x https://b.example/y", "found 2 different tickets (`https://a.example/x`, "
                                                          "`https://b.example/y`); keep exactly one under ### Zendesk "
                                                          "ticket"),
    ("ticket", "https://gitlab.zendesk.com/agent/" + "a" * 90, "`https://gitlab.zendesk.com/agent/" + "a" * 67 + "…` "
     "has no ticket number in it; paste the ticket's URL (…/agent/tickets/512345) or just its number"),
    ("users", "1 2", "found 2 different user counts (`1`, `2`); keep exactly one under ### User count"),
    ("users", "none", "no number found in `none`; write the user count as a number, e.g. 250"),
    ("users", "", "missing: write the number of users (at least the \"Maximum users\" on the Subscription page) "
                  "under ### User count, e.g. 250"),
    ("users", "9" * 41, "`99999999999999999999…` is far too large; write the user count"),
    ("users", "9" * 31, "`99999999999999999999…` is far too large; write the user count"),
    ("users", "2.5", "`2.5` is not a whole number of users; write e.g. 1,250 or 1250"),
    ("users", "2.5k", "`2.5k` is not a number; write e.g. 1,250 or 1250"),
    ("users", "about 300", "`about 300` is not exact (`about`); the bot does not guess: write the exact number of "
                           "users from the Subscription page, e.g. 250"),
    ("users", "x" * 2001, "the text for this field is 2,001 characters long; write just the value under "
                          "### User count"),
    ("expired", "", "missing: write the expired license's expiration date from the screenshot under ### Expiry date "
                    "of the customer's expired license, e.g. 2026-11-12"),
    ("expired", "soon", "no date found in `soon`; write the expired license's date as YYYY-MM-DD, e.g. 2026-11-12"),
    ("expired", "2026-11-12 2026-11-13", "found 2 different dates (`2026-11-12`, `2026-11-13`); keep exactly one "
                                         "under ### Expiry date of the customer's expired license"),
    ("expired", "around 12 Nov 2026", "`around 12 Nov 2026` is not exact (`around`); the bot does not guess: write "
                                      "the exact date from the customer's screenshot as YYYY-MM-DD, e.g. 2026-11-12"),
    ("expired", "11/12/2026", "`11/12/2026` is ambiguous (day/month or month/day?); write it as YYYY-MM-DD, e.g. "
                              "2026-11-12, or with the month's name, e.g. 12 Nov 2026"),
])
def test_each_field_error_is_one_whole_message_naming_the_value_and_the_fix(field, text, says):
    """What the requester reads in the bot's note, word for word (a changed word in a message is a changed note),
    under the field it is about (the note lists each error under its field's heading)."""
    result = parse(_doc(**{field: text}))
    assert result.request is None
    named = {"ticket": "ticket", "email": "email", "users": "user_count", "expired": "expired_on"}[field]
    assert [(e.field, e.message) for e in result.errors] == [(named, says)]


def test_the_fields_that_parsed_are_kept_beside_the_one_that_did_not():
    result = parse(_doc(users="lots"))
    assert (result.ticket_url, result.ticket_id, result.email, result.user_count, result.expired_on) == (
        f"{_T}512345", 512345, "jane@example.com", None, date(2026, 11, 13))
    assert result.checklist == request.Checklist(paid_plan=True, screenshots=True)


# What people write for each field's name (the template's headings, and what they type instead).
_NAMES = {
    "ticket": ["Zendesk ticket", "Ticket", "Zendesk", "Ticket URL", "Ticket link", "Zendesk ticket URL",
               "Zendesk ticket link", "Zendesk link", "Support ticket"],
    "email": ["Customer email", "Email", "E-mail", "Customer e-mail", "Email address", "Customer email address",
              "Recipient", "Recipient email", "Send to"],
    "users": ["User count", "Users", "Number of users", "Seats", "Seat count", "User seats", "Licensed users",
              "Active users", "Maximum users"],
    "expired": ["Expiry date of the customer's expired license", "License expiration date", "Expiration date",
                "Expired on", "Expiry date", "License expiry date", "License expired on", "Expires at", "Expired",
                "Expiry", "License expiration", "Expiration"],
}
_VALUES = {"ticket": "512345", "email": "jane@example.com", "users": "250", "expired": "2026-11-13"}


_WRITTEN = {"heading": "## {name}\n{value}\n", "field line": "{name}: {value}\n",
            "bold field line": "**{shouted} (required)**:  {value}\n"}


# The bug: the template's own long expiry heading (an apostrophe, 45 characters) was read as a heading only; written
# as `Expiry date of the customer's expired license: 2026-11-13` (or with a typographic ’) it was "missing".
@pytest.mark.parametrize("field, name, written", [
    (f, n, w) for f, names in {**_NAMES, "expired": [*_NAMES["expired"], "Expiry date of the customer\u2019s expired "
                                                     "license"]}.items() for n in names for w in _WRITTEN.values()])
def test_every_name_people_give_a_field_is_read(field, name, written):
    """Each name a field goes by, as a heading and as a `Name: value` line (first: a field line is read outside
    the other fields' sections)."""
    text = written.format(name=name, shouted=name.upper(), value=_VALUES[field]) + "".join(
        f"### {_NAMES[other][0]}\n{value}\n" for other, value in _VALUES.items() if other != field)
    result = parse(text + "### Checklist\n- [x] paid plan\n- [x] screenshots\n")
    assert result.errors == ()
    got = result.request
    assert (got.ticket_id, got.email, got.user_count, got.expired_on) == (
        512345, "jane@example.com", 250, date(2026, 11, 13))


@pytest.mark.parametrize("month, number", [
    ("January", 1), ("February", 2), ("March", 3), ("April", 4), ("May", 5), ("June", 6), ("July", 7),
    ("August", 8), ("September", 9), ("October", 10), ("November", 11), ("December", 12)])
def test_every_month_is_read_by_its_name_and_its_three_letters(month, number):
    assert parse(_doc(expired=f"3 {month} 2026")).request.expired_on == date(2026, number, 3)
    assert parse(_doc(expired=f"{month[:3].lower()} 3, 2026")).request.expired_on == date(2026, number, 3)


def test_a_field_of_exactly_the_longest_allowed_text_is_still_read():
    """2,000 characters is the most a field may hold (MAX_VALUE_CHARS); one more is refused unread."""
    result = parse(_doc(users="x" * 2000))
    assert [e.message for e in result.errors] == [f"no number found in `{'x' * 60}…`; write the user count as a "
                                                  "number, e.g. 250"]


def test_a_long_checklist_is_read_whole():
    """The checklist has no length limit: a requester may paste a long confirmation under it."""
    boxes = "- [x] paid plan\n- [x] screenshots\n" + "  confirmed on the ticket by the customer\n" * 100
    result = parse(_doc().split("### Checklist")[0] + "### Checklist\n" + boxes)
    assert result.errors == () and result.request.checklist == request.Checklist(paid_plan=True, screenshots=True)


def test_the_form_marker_is_kept_when_the_request_has_errors():
    for text in (request.FORM_MARKER + "\n", request.FORM_MARKER + "\n" + _doc(users="lots"),
                 request.FORM_MARKER + "\n" + _doc(users="x" * 2001)):
        assert parse(text).has_form_marker


def test_the_notes_are_kept_without_quick_actions():
    got = parse(_doc() + "### Notes\n\nfirst line\n/label ~urgent\n\nsecond line\n### Comments\nthird\n").request
    assert got.notes == "first line\nsecond line\nthird"
    assert got.to_json() == {"ticket_url": f"{_T}512345", "ticket_id": 512345, "email": "jane@example.com",
                             "user_count": 250, "expired_on": "2026-11-13"}


@pytest.mark.parametrize("text", ["250X", "@example.com", "jane@"])
def test_a_value_with_a_part_missing_or_a_letter_stuck_on_is_not_read_as_a_value(text):
    field = "users" if text[0].isdigit() else "email"
    result = parse(_doc(**{field: text}))
    assert result.request is None and len(result.errors) == 1


@pytest.mark.parametrize("text, count", [("9" * 30, int("9" * 30)), ("1,250 (1250)", 1250)])
def test_a_count_is_read_up_to_30_digits_and_one_count_written_twice_is_one(text, count):
    """30 digits are read (the policy then says the count is out of range); the same count in two forms is one."""
    assert parse(_doc(users=text)).user_count == count


@pytest.mark.parametrize("text", [f"{_T}512345 (#512345)", f"{_T}512345 ({_T}512345/)",
                                  f"HTTPS://gitlab.zendesk.com/agent/tickets/512345 {_T}512345"])
def test_one_ticket_written_as_its_url_and_again_is_one(text):
    """The same ticket number written twice, in any form, is one ticket, not "found 2 different tickets"."""
    result = parse(_doc(ticket=text))
    assert (result.ticket_id, result.errors) == (512345, ())


def test_a_count_of_40_characters_is_read_and_one_of_41_is_refused_before_it_is_read():
    """Tokens over 40 characters are refused unread (a hostile megabyte of digits is not parsed); 40 are read."""
    forty = "11" + "_1" * 19
    assert (len(forty), parse(_doc(users=forty)).user_count) == (40, int("1" * 21))
    assert [e.message for e in parse(_doc(users=forty + "1")).errors] == [
        "`11_1_1_1_1_1_1_1_1_1…` is far too large; write the user count"]


def test_text_of_exactly_the_limit_is_quoted_whole_and_one_character_more_is_cut():
    assert (request.quote("x" * 60), request.quote("x" * 61)) == ("`" + "x" * 60 + "`", "`" + "x" * 60 + "…`")


def test_every_html_comment_in_a_value_is_taken_out_and_nothing_beside_it():
    """A comment is not what the requester wrote as the value: all of them go, each exactly to its `-->`."""
    assert parse(_doc(users="2<!-- 3 -->50<!-- 4 --> <!-- 5 -->")).request.user_count == 250
    assert parse(_doc(users="2<!---->50<!-- 4 -->")).request.user_count == 250  # the empty comment, too


def test_the_value_under_a_run_of_headings_is_read_under_the_last():
    result = parse("### Notes\n### Zendesk ticket\n### Customer email\njane@example.com\n")
    assert (result.email, result.ticket_id) == ("jane@example.com", None)


def test_one_address_written_in_two_letter_cases_is_one():
    assert parse(_doc(email="Jane@example.com (jane@EXAMPLE.com)")).request.email == "Jane@example.com"


@pytest.mark.parametrize("text", ["gitlab.zendesk.com/agent/tickets/512345",
                                  "https://gitlab.zendesk.com/agent/tickets/512345.",
                                  "gitlab.zendesk.com/agent/tickets/512345.",
                                  "**https://gitlab.zendesk.com/agent/tickets/512345**"])
def test_the_ticket_url_checked_is_the_one_written_without_its_trailing_punctuation(text):
    """The policy checks the host of the URL as written: a URL written without its scheme, or ending a sentence,
    must still be the Zendesk URL, not a URL the host check refuses."""
    assert parse(_doc(ticket=text)).ticket_url == f"{_T}512345"


def test_a_ticket_that_did_not_parse_leaves_no_url_or_number_behind():
    result = parse(_doc(ticket="the customer's ticket"))
    assert (result.ticket_url, result.ticket_id, result.email) == (None, None, "jane@example.com")
