"""How long reading a request takes on the worst descriptions anyone who can file an issue can send.

GitLab allows descriptions of up to 1,048,576 characters, and every scheduled run reads every open
request, so one hostile issue must not stall the bot. For each shape below this prints the parse
time at 100 KB, 1 MB and 2 MB (fastest of several runs) and their ratios: linear parsing gives about 10
(up to about 25, as 1 MB no longer fits the processor's caches) and 2. Ratios of inputs that take under
5 ms at the smaller size are shown but not judged: at that scale they measure caches, not the parser.
It ends with the worst shape and its 1 MB time (target: under 0.5 s).

    python benchmarks/bench_parse.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import request  # noqa: E402
from bot.request import parse  # noqa: E402

FORM = "<!-- license-bot:request-form v1 -->\n"
# Below this, a 100 KB time is mostly cache and timer effects (100 KB fits in L2, 1 MB does not), so its
# ratio is printed but not judged.
NOISE = 0.005


def shapes(n: int) -> dict[str, str]:
    """Descriptions of about n characters, each aimed at a way a parser can go quadratic."""
    def fill(unit: str, head: str = "") -> str:
        return FORM + head + unit * ((n - len(FORM) - len(head)) // len(unit))
    return {
        "letters under Customer email": fill("a", "### Customer email\n"),
        "email characters, no @": fill("ab.c-d_e+", "### Customer email\n"),
        "runs of @": fill("a@", "### Customer email\n"),
        "dots under User count": fill(".", "### User count\n"),
        "digits under User count": fill("1", "### User count\n"),
        "digit-dot runs under date": fill("1.", "### License expiration date\n"),
        "brackets": fill("[", "### Zendesk ticket\n"),
        "URL-ish under ticket": fill("a.b/", "### Zendesk ticket\n"),
        "<!-- without an end": fill("<!-- x "),
        "thousands of headings": fill("### Customer email\n"),
        "thousands of fences": fill("```\n"),
        "thousands of task lines": fill("- [x] paid\n"),
        "Field: lines": fill("Customer email: a@b.co\n"),
        "nested blockquotes": fill("> "),
        "angle brackets": fill("<"),
        "backticks": fill("`"),
        # Issue 19: one tiny block repeated, half a million times (markdown-it took 2-3 s on each).
        "headings #": fill("#\n"),
        "headings # 1": fill("# 1\n"),
        "closed headings # x #": fill("# x #\n"),
        "blank-line paragraphs": fill("x\n\n"),
        "one long paragraph": fill("x\n"),
        "blank lines": fill("\n"),
        "blockquotes": fill("> x\n\n"),
        "quote lines": fill(">\n"),
        "lazy quote lines": fill("> x\ny\n"),
        "nested lazy quote lines": fill("> > x\ny\n"),
        "fences in a quote": fill("> ```\n"),
        "headings in a quote": fill("> # h\n"),
        "list markers -": fill("-\n"),
        "list markers *": fill("* x\n\n"),
        "list markers 1.": fill("1.\n"),
        "setext headings -": fill("x\n-\n"),
        "setext headings =": fill("x\n=\n"),
        "backtick fences": fill("```\n"),
        "tilde fences": fill("~~~\n"),
        "unclosed fence": fill("x\n", "```\n"),
        "indented code": fill("    x\n"),
        "HTML blocks": fill("<div>\n\n"),
        "HTML comments": fill("<!-- -->\n"),
        "task lines under Checklist": fill("- [x] paid\n", "### Checklist\n"),
    }


# The value parsers on their own, at full size: a field's text is bounded (2,000 characters) before
# they run, but they must not backtrack even without that bound.
VALUE_PARSERS = {
    "email parser: email characters": (lambda t: request._parse_email([t], []), "ab.c-d_e+"),
    "email parser: runs of @": (lambda t: request._parse_email([t], []), "a@"),
    "count parser: digit-comma runs": (lambda t: request._parse_user_count([t], []), "1,"),
    "date parser: digit-dot runs": (lambda t: request._parse_expired_on([t], []), "1."),
    "date parser: digits and spaces": (lambda t: request._parse_expired_on([t], []), "12 "),
    "ticket parser: URL-ish": (lambda t: request._parse_ticket([t], "https://x.zendesk.com", []), "a.b/"),
    "ticket parser: #digits": (lambda t: request._parse_ticket([t], "https://x.zendesk.com", []), "#1"),
}


def timed(text: str, repeat: int, func=parse) -> float:
    runs = []
    for _ in range(repeat):
        request._parse_once.cache_clear()  # parse keeps recent results: time the parsing, not the cache
        start = time.perf_counter()
        func(text)
        runs.append(time.perf_counter() - start)
    return min(runs)  # the least disturbed run: the usual choice for timing pure code (see timeit)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    parse(FORM + "### User count\n1\n")  # compile the parser's expressions once, outside the timings
    small, large, double = shapes(100 * 1024), shapes(1_048_576), shapes(2 * 1_048_576)
    print(f"{'input':32} {'100 KB':>9} {'1 MB':>9} {'ratio':>6} {'2 MB':>9} {'ratio':>6}")
    worst, worst_name, worst_ratio, worst_double = 0.0, "", 0.0, 0.0
    for name in small:
        a, b = timed(small[name], args.repeat), timed(large[name], args.repeat)
        c = timed(double[name], args.repeat)
        if b > worst:
            worst, worst_name = b, name
        worst_ratio = max(worst_ratio, b / a) if a > NOISE else worst_ratio
        worst_double = max(worst_double, c / b) if b > NOISE else worst_double
        print(f"{name:32} {a * 1000:7.1f}ms {b * 1000:7.1f}ms {b / a:6.1f} {c * 1000:7.1f}ms {c / b:6.1f}")
    # 100 KB fits in the CPU's caches and 1 MB does not, so linear code shows 1 MB / 100 KB ratios up to about
    # 25; 2 MB / 1 MB (both beyond the caches) shows linearity plainly: about 2, where quadratic would be 4.
    print(f"whole descriptions: worst shape {worst_name!r}, its 1 MB parse {worst * 1000:.0f} ms (target < 500); "
          f"largest 1 MB / 100 KB ratio {worst_ratio:.1f} where 100 KB takes over 5 ms; largest 2 MB / 1 MB "
          f"ratio {worst_double:.1f} (linear: about 2)\n")
    value_worst = 0.0
    for name, (func, unit) in VALUE_PARSERS.items():
        a_text, b_text = unit * (100 * 1024 // len(unit)), unit * (1_048_576 // len(unit))
        a, b = timed(a_text, args.repeat, func), timed(b_text, args.repeat, func)
        value_worst = max(value_worst, b / a) if a > NOISE else value_worst
        print(f"{name:32} {a * 1000:7.1f}ms {b * 1000:7.1f}ms {b / a:6.1f}")
    print(f"value parsers without the bound: largest ratio {value_worst:.1f} where 100 KB takes over 5 ms "
          "(linear: about 10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
