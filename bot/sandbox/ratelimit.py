"""GitLab's search rate limit: every issues-API call with `search` counts against `search_rate_limit`
(default 30 requests per minute per user; Admin > Settings > Network > Search rate limits). Over it
GitLab answers 429 without a Retry-After header (docs: "Search rate limits"; gitlab-notes.md)."""

from __future__ import annotations

import time
from collections import defaultdict, deque


class RateLimit:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute, self.clock = per_minute, clock  # 0: no limit
        self._calls: dict[int, deque[float]] = defaultdict(deque)

    def allow(self, user_id: int) -> bool:
        if self.per_minute <= 0:
            return True
        now, calls = self.clock(), self._calls[user_id]
        while calls and calls[0] <= now - 60:
            calls.popleft()
        if len(calls) >= self.per_minute:
            return False
        calls.append(now)
        return True
