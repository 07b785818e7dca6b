"""The status note's hidden state (bot/status.py) read back as it was written (issue 22, finding 7: errors,
warnings and notices lost on the way back survived every test). Pure: text in, text out."""

from __future__ import annotations

from dataclasses import fields

from bot import status as status_mod
from bot.status import Status, description_hash, encode_state, is_status_note, key_text, read

KEY = "-----BEGIN TRIAL LICENSE-----\nAbC+/=\nxyz\n-----END TRIAL LICENSE-----"


def _full() -> Status:
    """A state with every field away from its default, so a field dropped on the way back shows."""
    values = {}
    for n, f in enumerate(fields(Status)):
        values[f.name] = {"str": f"v{n}", "str | None": f"v{n}", "int": n + 1, "int | None": n + 1,
                          "bool": True, "bool | None": False,
                          "tuple[tuple[str, str], ...]": ((f"field{n}", f"message {n}"), ("other", "second")),
                          "tuple[str, ...]": (f"notice {n}", "another notice")}[f.type]
    return Status(**values)


def test_every_field_survives_a_round_trip_errors_warnings_and_notices_too():
    state = _full()
    assert read(f"{status_mod.MARKER}\nSummary for people\n\n{encode_state(state)}\n") == state


def test_errors_warnings_and_notices_come_back_as_tuples_of_the_same_pairs():
    state = Status("rejected", description_hash("x"), "2026-11-28T10:00:00+00:00",
                   errors=(("email", "Customer email is missing: add it"),),
                   warnings=(("users", "over 1000 users"), ("ticket", "no ticket")), notices=("the key was resent",))
    back = read(encode_state(state))
    assert back.errors == (("email", "Customer email is missing: add it"),)
    assert back.warnings == (("users", "over 1000 users"), ("ticket", "no ticket"))
    assert back.notices == ("the key was resent",)
    assert hash(back) == hash(state)  # lists would make it unhashable: the state must compare and hash as written


def test_a_state_without_errors_warnings_or_notices_reads_with_none():
    body = '<!-- license-bot:state {"step":"claimed","description_sha256":"d","judged_at":"t"} -->'
    assert read(body) == Status("claimed", "d", "t")


def test_a_value_that_would_close_the_comment_stays_inside_it():
    state = Status("rejected", "d", "t", errors=(("email", "--> <b>not html</b> -->"),), last_error="a > b")
    text = encode_state(state)
    assert text.count("-->") == 1 and text.endswith(" -->") and ">" not in text[:-3]
    assert read("before " + text + " after -->") == state


def test_unknown_fields_from_a_newer_bot_are_ignored():
    body = '<!-- license-bot:state {"step":"delivered","description_sha256":"d","judged_at":"t","later":1} -->'
    assert read(body) == Status("delivered", "d", "t")


def test_no_state_or_an_unreadable_one_is_none_never_an_exception():
    assert read("") is None and read(None) is None and read("a note by a person") is None
    assert read("<!-- license-bot:state {not json} -->") is None  # ValueError
    assert read('<!-- license-bot:state {"step":"x"} -->') is None  # TypeError: required fields missing
    assert read('<!-- license-bot:state {"step":"x","description_sha256":"d","judged_at":"t","errors":5} -->') is None


def test_the_key_copy_is_read_exactly_and_only_a_license_block():
    body = f"Your key:\n\n```\n{KEY}\n```\n\nand later text -----END TRIAL LICENSE-----"
    assert key_text(body) == KEY
    assert key_text("no key here") is None and key_text(None) is None
    assert key_text("-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----") is None


def test_the_description_hash_is_its_sha256_and_none_is_empty():
    assert description_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert description_hash(None) == description_hash("") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_only_a_note_with_the_marker_is_a_status_note():
    assert is_status_note(f"text\n{status_mod.MARKER}\n") and not is_status_note("text") and not is_status_note(None)


def test_has_license_is_whether_a_key_was_made():
    assert not Status("claimed", "d", "t").has_license and Status("claimed", "d", "t", license_sha256="s").has_license
    assert Status("claimed", "d", "t").with_(step="held", attempts=2) == Status("held", "d", "t", attempts=2)
