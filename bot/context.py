"""What one run shares: the adapters, the signing key, the time, and the record of issued licenses.

Its own module because both the run loop and the processor use it, and neither imports the other's
loop: the runner hands a Context to the processor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property
from typing import TYPE_CHECKING

from .scrub import Scrubber
from .signer import Signer, as_signer

if TYPE_CHECKING:
    from .config import Config
    from .mailer import Mailer
    from .record import Record
    from .slack import Notifier
    from .tracker import Tracker
    from .zendesk import ZendeskClient


@dataclass
class Context:
    """Everything one run shares: adapters, the signing key, the time, the record of issued licenses."""

    config: Config
    tracker: Tracker
    mailer: Mailer
    signer: Signer  # an RSA private key is taken as a file signer
    now: datetime
    notifier: Notifier | None = None
    zendesk: ZendeskClient | None = None  # None: zendesk.enabled is false, and no Zendesk call is made
    scrub: Callable[[str], str] = field(default_factory=Scrubber)  # every text that leaves the bot
    cache: dict = field(default_factory=dict)  # per-run answers the processor looks up more than once

    def __post_init__(self) -> None:
        self.signer = as_signer(self.signer)

    @cached_property
    def record(self) -> Record:
        """The record of issued licenses, read once per run (made when first asked: an idle run never is)."""
        from .keys import trusted_keys
        from .record import Record

        # The signing key's own, then the earlier keys a rotation keeps (license.trusted_public_keys).
        trusted = [key for _, key in trusted_keys(self.config, self.signer.public_key())]
        return Record(self.tracker, trusted, self.signer)

    @property
    def today(self) -> date:
        return self.now.date()
