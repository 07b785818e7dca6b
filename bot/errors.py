"""The one exception family the CLI turns into a one-line message and a non-zero exit."""


class BotError(Exception):
    """An error whose message is fit to show a user: it names the problem and the fix, never a secret."""
