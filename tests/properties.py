"""How many examples a property test draws.

A mutation run (.ci/mutation sets MUTATION_RUN) runs the property tests in full for every mutant they reach that the
quick tests let through, so there they draw a tenth as many: the run takes minutes instead of hours, and the score
counts only what that tenth kills.
"""

from __future__ import annotations

import os


def examples(n: int) -> int:
    return max(n // 10, 100) if os.environ.get("MUTATION_RUN") else n
