"""Outside text made inert before the bot writes it to GitLab: it can never start a quick action.

GitLab runs quick actions in notes, note edits and descriptions posted through the API, as the poster
(`Notes::CreateService`, `Notes::UpdateService`), so text the bot writes at a line start would run as the
bot. `Gitlab::QuickActions::Extractor` deletes every carriage return, then matches a command only where a
line *starts* with `/` (`^\\/(?<cmd>...)`). So every line of outside text (request fields, Zendesk data,
server replies, error texts) that would start with `/` gets one leading space: Markdown shows it the same,
and the extractor no longer matches it. Pure.
"""

from __future__ import annotations

import re

_LINE_START_SLASH = re.compile(r"(^|\n)(?=/)")


class Verbatim(str):
    """The bot's own text (a license key, the state comment), written exactly as it is."""


def inert(text: str) -> str:
    """`text` with no line (the first included: it may land at a line start) beginning with `/`."""
    if isinstance(text, Verbatim):
        return text
    return _LINE_START_SLASH.sub(r"\1 ", text.replace("\r", ""))
