"""The scrubber (bot/scrub.py) over errors that actually hold secrets, as other systems quote them (issue 22,
finding 1: its mutants survived because no test's error contained a secret). Each test names the leak it
catches; each asserts the whole scrubbed text, so a secret left in part fails it too."""

from __future__ import annotations

from bot.scrub import Scrubber

TOKEN = "glpat-Abc123Def456Ghi789"
SMTP_PASSWORD = "mail-pass-7Q2x"
WEBHOOK = "https://hooks.slack.com/services/T0AAAA1/B0BBBB2/XyZsecretWebhookPath"
PEM = ("-----BEGIN RSA PRIVATE KEY-----\n"
       "MIIEowIBAAKCAQEAuJ3Q0firstlineofthekeyAAAA\n"
       "  c2Vjb25kbGluZW9mdGhla2V5QkJCQkJCQkJC  \n"
       "-----END RSA PRIVATE KEY-----\n")


def test_every_secret_is_scrubbed_not_only_the_last():
    scrub = Scrubber([TOKEN, SMTP_PASSWORD, WEBHOOK])
    text = f"token {TOKEN} rejected; login with {SMTP_PASSWORD} refused; POST {WEBHOOK} failed"
    assert scrub(text) == "token [secret] rejected; login with [secret] refused; POST [secret] failed"


def test_no_secret_and_empty_secrets_change_nothing():
    scrub = Scrubber([None, "", TOKEN])
    assert scrub("SMTP said 535 authentication failed: see https://gitlab.example/help") == (
        "SMTP said 535 authentication failed: see https://gitlab.example/help")


def test_the_whole_webhook_goes_not_only_its_last_segment():
    # Longest first: replacing the path's last segment first would leave the workspace and channel ids.
    assert Scrubber([WEBHOOK])(f"POST {WEBHOOK} answered 404") == "POST [secret] answered 404"


def test_a_webhook_path_or_its_last_segment_quoted_alone_is_scrubbed():
    scrub = Scrubber([WEBHOOK])
    assert scrub("Slack answered 404: no_service for /services/T0AAAA1/B0BBBB2/XyZsecretWebhookPath") == (
        "Slack answered 404: no_service for [secret]")
    assert scrub("unknown hook services/T0AAAA1/B0BBBB2/XyZsecretWebhookPath/") == "unknown hook [secret]/"
    assert scrub("invalid_token XyZsecretWebhookPath") == "invalid_token [secret]"


def test_a_url_query_quoted_alone_is_scrubbed():
    hook = "https://chat.example/hooks/incoming?sig=9f8e7d6c5b4a&room=ops"
    scrub = Scrubber([hook])
    assert scrub("rejected query sig=9f8e7d6c5b4a&room=ops (bad signature)") == (
        "rejected query [secret] (bad signature)")


def test_a_url_encoded_secret_is_scrubbed():
    # A client that builds a URL quotes the password: `@` and `/` become %40 and %2F.
    password = "p@ss/word!9"
    assert Scrubber([password])("GET https://mail.example/login?pw=p%40ss%2Fword%219 -> 403") == (
        "GET https://mail.example/login?pw=[secret] -> 403")


def test_any_one_line_of_a_pem_key_is_scrubbed():
    scrub = Scrubber([PEM])
    assert scrub("bad key line: MIIEowIBAAKCAQEAuJ3Q0firstlineofthekeyAAAA") == "bad key line: [secret]"
    assert scrub("near c2Vjb25kbGluZW9mdGhla2V5QkJCQkJCQkJC: padding") == "near [secret]: padding"
    assert scrub(PEM) == "[secret]"
    # The armour lines are no secret: scrubbing them would only hide which kind of key was meant.
    assert scrub("expected -----BEGIN RSA PRIVATE KEY-----") == "expected -----BEGIN RSA PRIVATE KEY-----"


def test_a_secret_with_surrounding_blanks_is_scrubbed_as_quoted_trimmed():
    assert Scrubber(["  hunter2hunter2\n"])("login as bot/hunter2hunter2 failed") == "login as bot/[secret] failed"


def test_a_six_character_secret_is_scrubbed_wherever_it_stands():
    assert Scrubber(["Zq9x7W"])("the server said Zq9x7W was wrong") == "the server said [secret] was wrong"


def test_a_short_secret_does_not_blank_out_ordinary_words():
    # A five-character PIN such as "12345" or a password "admin" replaced everywhere would mangle every message.
    scrub = Scrubber(["admin", "12345"])
    text = "the administrator (admin) retried 123456 times"
    assert scrub(text) == text


def test_a_short_secret_is_scrubbed_where_secrets_stand():
    scrub = Scrubber(["admin", "1234"])
    assert scrub("login=admin rejected") == "login=[secret] rejected"
    assert scrub("smtp://bot:admin@mail.example failed; pin: 1234, user-pin:'1234'") == (
        "smtp://mail.example failed; pin: [secret], user-pin:'[secret]'")
    # ... as a whole word only: `key=administrator` or `n=12345` is not the secret.
    assert scrub("key=administrator n=12345 v=admin.x w=admin-2") == "key=administrator n=12345 v=admin.x w=admin-2"
    assert scrub("x=admin. y=admin") == "x=[secret]. y=[secret]"


def test_a_short_url_encoded_secret_is_scrubbed_where_secrets_stand():
    assert Scrubber(["a/b c"])("GET /x?p=a%2Fb%20c&q=1") == "GET /x?p=[secret]&q=1"


def test_user_info_in_any_url_is_dropped_whoever_put_it_there():
    scrub = Scrubber()
    assert scrub("clone https://oauth2:not-our-token@gitlab.example/g/p.git failed") == (
        "clone https://gitlab.example/g/p.git failed")
    assert scrub("SMTPS://Bot.User@mail.example:465 refused") == "SMTPS://mail.example:465 refused"
    # No user-info: the URL stays whole (an `@` later in the path is no login).
    assert scrub("see https://gitlab.example/g/p/-/issues?author=@jane") == (
        "see https://gitlab.example/g/p/-/issues?author=@jane")


def test_a_named_secret_is_scrubbed_whoever_it_belongs_to():
    scrub = Scrubber()
    assert scrub("GET /api?private_token=abc&page=2") == "GET /api?private_token=[secret]&page=2"
    assert scrub('"api-key"=k1, Secret = s2; PIN=1 passwd="x y"') == (
        '"api-key"=[secret], Secret = [secret]; PIN=[secret] passwd=[secret]')
    assert scrub("password='two words' JOB-TOKEN=j1,token=\"q\"") == (
        "password=[secret] JOB-TOKEN=[secret],token=[secret]")
    assert scrub("Authorization: Bearer eyJhbGciOi.x.y") == "Authorization: Bearer [secret]"
    assert scrub("authorization: basic dXNlcjpwdw== then") == "authorization: basic [secret] then"
    # Already scrubbed text is left as it is (scrubbing twice changes nothing).
    assert scrub("token=[secret]") == "token=[secret]"


def test_a_webhook_ending_in_a_slash_loses_its_last_segment_too():
    # The last segment is found after the trailing `/` is dropped, whatever letter the token ends with.
    hook = "https://hooks.example.com/services/T0AAAA1/Zq9SecretHookX/"
    scrub = Scrubber([hook])
    assert scrub("bad token Zq9SecretHookX.") == "bad token [secret]."
    assert scrub("no such path services/T0AAAA1/Zq9SecretHookX") == "no such path [secret]"


def test_a_password_with_a_slash_is_no_url_its_parts_stay_ordinary_words():
    # Only a URL is split into parts: a passphrase's last word alone is an ordinary word, not its secret.
    scrub = Scrubber(["correct/horse/battery"])
    assert scrub("login correct/horse/battery refused; battery low") == "login [secret] refused; battery low"


def test_a_very_short_secret_with_a_slash_is_scrubbed_url_encoded_where_secrets_stand():
    assert Scrubber(["x/9"])("GET /x?p=x%2F9&q=1") == "GET /x?p=[secret]&q=1"


def test_of_two_short_secrets_the_longer_goes_whole_not_its_start_only():
    # A PIN that is the start of another short secret: matching the PIN first would leave the rest in the text.
    assert Scrubber(["4821", "4821!"])("user-pin=4821! smtp:4821") == "user-pin=[secret] smtp:[secret]"
