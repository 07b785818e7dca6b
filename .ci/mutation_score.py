"""The mutation score per module from mutmut's results, less the mutants listed as equivalent.

Equivalent mutants (no input can tell them apart from the original) are listed one per line in the file that
pyproject's [tool.mutmut] `equivalent_mutants` names: `<mutant name>  # <why no input tells them apart>`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import tomllib

KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def equivalents(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        name, _, why = line.partition("#")
        if name.strip():
            if not why.strip():
                sys.exit(f"{path}: {name.strip()} has no reason; write `name  # why no input tells it apart`")
            found[name.strip()] = why.strip()
    return found


def results(mutmut: str) -> dict[str, str]:
    out = subprocess.run([mutmut, "results", "--all", "true"], capture_output=True, text=True, check=True).stdout
    return dict(re.findall(r"^\s*(bot\.\S+):\s*(.+?)\s*$", out, re.M))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("modules", nargs="*", help="module names (scrub, record, ...); default: every mutated one")
    parser.add_argument("--fail-under", type=float, help="exit 1 when a module's score is below this percentage")
    parser.add_argument("--mutmut", default=str(Path(sys.executable).with_name("mutmut")))
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
    args = parser.parse_args()
    settings = tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"]
    equivalent = equivalents(Path(settings["equivalent_mutants"]))
    verdicts = results(args.mutmut)
    modules = args.modules or sorted({name.split(".")[1] for name in verdicts})
    print(f"{'module':<12}{'mutants':>8}{'killed':>8}{'survived':>9}{'other':>7}{'equivalent':>11}{'score':>8}")
    low = []
    for module in modules:
        mine = {n: v for n, v in verdicts.items() if n.startswith(f"bot.{module}.")}
        counts = Counter("equivalent" if n in equivalent else "killed" if v in KILLED else v for n, v in mine.items())
        counted = len(mine) - counts["equivalent"]
        score = 100 * counts["killed"] / counted if counted else 0.0
        other = counted - counts["killed"] - counts["survived"]
        print(f"{module:<12}{len(mine):>8}{counts['killed']:>8}{counts['survived']:>9}{other:>7}"
              f"{counts['equivalent']:>11}{score:>7.1f}%")
        if args.survivors:
            for name, verdict in sorted(mine.items()):
                if name not in equivalent and verdict not in KILLED:
                    print(f"    {name}: {verdict}")
        if args.fail_under is not None and score < args.fail_under:
            low.append(module)
    if low:
        print(f"below {args.fail_under}%: {', '.join(low)}", file=sys.stderr)
    return 1 if low else 0


if __name__ == "__main__":
    sys.exit(main())
