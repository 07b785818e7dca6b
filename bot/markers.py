"""The hidden HTML comments by which the bot knows its request form and its own status notes.

Shared by the template, the parser, the status note and the tracker's searches.
"""

FORM_MARKER = "license-bot:request-form"    # in the issue template: an issue filed from it is a request
STATUS_MARKER = "<!-- license-bot:status -->"  # first line of the bot's one status note per issue
