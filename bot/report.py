"""`license-bot report`: what the bot has issued, for whom, by whom, how fast, and what failed.

Pure: figures computed from values the adapters read (the record's verified entries, the requests and their
status notes), never GitLab's search, with `today` passed in; then rendered as text, CSV, JSON or one
self-contained HTML file (inline CSS and SVG, nothing fetched), which reads on a 360 px phone and a desktop.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

FORMATS = ("text", "csv", "json", "html")


@dataclass(frozen=True)
class LicenseRow:
    """One verified record entry."""

    license_id: str
    issue_iid: int
    issue_url: str
    email: str
    user_count: int
    ticket_id: int | None
    made_on: date
    expires_on: date
    signed_by: str = ""  # the trusted key the license decodes with


@dataclass(frozen=True)
class RequestRow:
    """One request issue and what its status note says."""

    iid: int
    url: str
    author: str
    filed_at: datetime
    step: str | None            # the status note's step; None: not judged yet
    reasons: tuple[str, ...]    # for a failed request: the fields at fault, or why it is held or undelivered
    emailed_at: datetime | None


@dataclass(frozen=True)
class Integrity:
    entries: int
    problems: tuple[str, ...]
    unchained: int
    keys: tuple[tuple[str, int], ...]  # each trusted key, with the record entries it verifies


@dataclass(frozen=True)
class Timed:
    """A time from filing to email, and the issue it is for."""

    minutes: float
    iid: int
    url: str


@dataclass(frozen=True)
class Repeat:
    domain: str
    first: int     # issue of the earlier license
    second: int    # issue of the later one
    days: int


@dataclass(frozen=True)
class Report:
    since: date
    until: date
    today: date
    repeat_window_days: int
    expiring_days: int
    licenses: int
    per_week: tuple[tuple[date, int], ...]            # Monday of each week in the period, licenses made
    by_requester: tuple[tuple[str, int], ...]
    by_domain: tuple[tuple[str, int], ...]
    repeats: tuple[Repeat, ...]
    emailed: tuple[Timed, ...]                        # every license of the period that was emailed, by issue
    median: Timed | None
    p95: Timed | None
    worst: Timed | None
    failed: tuple[tuple[str, int], ...]               # reason, requests
    expiring: tuple[LicenseRow, ...]
    integrity: Integrity


def domain(email: str) -> str:
    return email.rpartition("@")[2].strip().casefold()


def nearest_rank(values: Sequence[Timed], percent: float) -> Timed | None:
    """The nearest-rank percentile: an actual sample, so it names its issue (the median of an even count is
    the lower middle one)."""
    if not values:
        return None
    ordered = sorted(values, key=lambda t: (t.minutes, t.iid))
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def build(licenses: Sequence[LicenseRow], requests: Sequence[RequestRow], integrity: Integrity, *, since: date,
          until: date, today: date, repeat_window_days: int = 90, expiring_days: int = 7) -> Report:
    made = sorted((r for r in licenses if since <= r.made_on <= until), key=lambda r: (r.made_on, r.issue_iid))
    start = since - timedelta(days=since.weekday())
    weeks = Counter(r.made_on - timedelta(days=r.made_on.weekday()) for r in made)
    per_week = tuple((start + timedelta(weeks=n), weeks.get(start + timedelta(weeks=n), 0))
                     for n in range((until - start).days // 7 + 1))
    by_iid = {q.iid: q for q in requests}
    requesters = Counter(by_iid[r.issue_iid].author if r.issue_iid in by_iid else "(unknown)" for r in made)
    domains = Counter(domain(r.email) for r in made)
    repeats = []
    last: dict[str, LicenseRow] = {}
    for r in made:
        before = last.get(domain(r.email))
        if before is not None and (r.made_on - before.made_on).days <= repeat_window_days:
            repeats.append(Repeat(domain(r.email), before.issue_iid, r.issue_iid, (r.made_on - before.made_on).days))
        last[domain(r.email)] = r
    # Never below zero: GitLab's clock and the bot's may differ by a second.
    emailed = tuple(Timed(max(0.0, round((q.emailed_at - q.filed_at).total_seconds() / 60, 1)), q.iid, q.url)
                    for r in made if (q := by_iid.get(r.issue_iid)) and q.emailed_at)
    failed = Counter(reason for q in requests if since <= q.filed_at.date() <= until and q.reasons
                     for reason in q.reasons)
    expiring = tuple(sorted((r for r in licenses if today <= r.expires_on <= today + timedelta(days=expiring_days)),
                            key=lambda r: (r.expires_on, r.issue_iid)))
    return Report(since, until, today, repeat_window_days, expiring_days, len(made), per_week,
                  _ranked(requesters), _ranked(domains), tuple(repeats), emailed, nearest_rank(emailed, 50),
                  nearest_rank(emailed, 95), nearest_rank(emailed, 100), _ranked(failed), expiring, integrity)


def _ranked(counts: Counter) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def duration(minutes: float) -> str:
    if minutes < 60:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


# --- text ---------------------------------------------------------------------------------------------------

def text(rep: Report) -> str:
    out = [f"License Bot report, {rep.since} to {rep.until} (made {rep.today})", "",
           f"Licenses made: {rep.licenses}", "", "Licenses per week (week starting Monday):"]
    out += [f"  {week}  {count:>3}  {'#' * count}".rstrip() for week, count in rep.per_week]
    out += ["", "By requester:", *_pairs(rep.by_requester)]
    out += ["", "By customer domain:", *_pairs(rep.by_domain)]
    out += ["", f"Repeat customers (two licenses within {rep.repeat_window_days} days):"]
    out += [f"  {r.domain}: #{r.first} then #{r.second}, {r.days} days apart" for r in rep.repeats] or ["  none"]
    out += ["", f"Filing to email ({len(rep.emailed)} emailed):"]
    for label, t in (("median", rep.median), ("95th percentile", rep.p95), ("worst", rep.worst)):
        out.append(f"  {label + ':':<17}{duration(t.minutes)} (#{t.iid})" if t else f"  {label + ':':<17}-")
    out += ["", "Failed requests by reason:", *_pairs(rep.failed)]
    out += ["", f"Licenses expiring in the next {rep.expiring_days} days:"]
    out += [f"  {r.expires_on}  #{r.issue_iid}  {r.email}, {r.user_count} users, "
            f"{'ticket ' + str(r.ticket_id) if r.ticket_id is not None else 'no ticket'}" for r in rep.expiring] \
        or ["  none"]
    out += ["", *_integrity_lines(rep.integrity)]
    return "\n".join(out) + "\n"


def _pairs(pairs) -> list[str]:
    return [f"  {name:<32} {count:>4}" for name, count in pairs] or ["  none"]


def _integrity_lines(i: Integrity) -> list[str]:
    head = (f"Record: {i.entries} entr{'ies' if i.entries != 1 else 'y'}, "
            + ("every entry signed and chained" if not i.problems else f"DAMAGED, {len(i.problems)} problem"
               f"{'s' if len(i.problems) != 1 else ''}")
            + (f", {i.unchained} old unchained" if i.unchained else ""))
    keys = [f"  {name}: {count} entr{'ies' if count != 1 else 'y'}" for name, count in i.keys]
    return [head, *keys, *(f"  ! {p}" for p in i.problems)]


# --- CSV and JSON ---------------------------------------------------------------------------------------------

def _cell(value) -> str:
    """No cell starts a spreadsheet formula (an address or name is the customer's or requester's text)."""
    text_ = "" if value is None else str(value)
    return "'" + text_ if text_[:1] in ("=", "+", "-", "@", "\t", "\r") else text_


def csv_text(rep: Report) -> str:
    """One table: section, item, value, issue: every figure of the text form."""
    rows: list[tuple] = [("period", "since", rep.since, ""), ("period", "until", rep.until, ""),
                         ("licenses", "total", rep.licenses, "")]
    rows += [("per_week", week, count, "") for week, count in rep.per_week]
    rows += [("by_requester", name, count, "") for name, count in rep.by_requester]
    rows += [("by_domain", name, count, "") for name, count in rep.by_domain]
    rows += [("repeat_customer", r.domain, r.days, f"#{r.first} #{r.second}") for r in rep.repeats]
    rows += [("filing_to_email_minutes", label, t.minutes, f"#{t.iid}") for label, t in
             (("median", rep.median), ("p95", rep.p95), ("worst", rep.worst)) if t]
    rows += [("failed", reason, count, "") for reason, count in rep.failed]
    rows += [("expiring", r.expires_on, r.email, f"#{r.issue_iid}") for r in rep.expiring]
    rows += [("record", "entries", rep.integrity.entries, ""), ("record", "problems", len(rep.integrity.problems), "")]
    rows += [("record_key", name, count, "") for name, count in rep.integrity.keys]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "item", "value", "issue"))
    writer.writerows(tuple(_cell(v) for v in row) for row in rows)
    return out.getvalue()


def json_text(rep: Report) -> str:
    return json.dumps(asdict(rep), default=str, indent=2) + "\n"


# --- HTML -----------------------------------------------------------------------------------------------------

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f1f24;background:#fafafa}
main{max-width:960px;margin:0 auto;padding:16px}
h1{font-size:1.4rem;margin:0 0 4px}h2{font-size:1.1rem;margin:24px 0 8px}
p.sub{color:#555;margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px}
.card b{display:block;font-size:1.4rem}
table{width:100%;border-collapse:collapse;background:#fff;table-layout:fixed}
td,th{border-bottom:1px solid #e5e5e5;padding:6px;text-align:left;overflow-wrap:anywhere;vertical-align:top}
td.n{text-align:right;width:5em}
svg{display:block;width:100%;max-width:640px;height:auto;background:#fff;border:1px solid #ddd;border-radius:6px}
.bad{color:#a4000f;font-weight:600}.ok{color:#116b2f;font-weight:600}
figure{margin:0}figcaption{color:#555;font-size:.9rem;margin-top:4px}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _bars(values: Sequence[tuple[str, float]], unit: str, title: str) -> str:
    """A bar chart as inline SVG, scaled by its viewBox to any width."""
    if not values:
        return "<p>none</p>"
    width, height, pad = 600, 220, 28
    highest = max(v for _, v in values)
    top = highest or 1  # all zero: flat bars, never a division by zero
    step = (width - 2 * pad) / max(len(values), 1)
    bars = []
    for n, (label, value) in enumerate(values):
        h = (height - 2 * pad) * value / top
        x = pad + n * step
        bars.append(f'<rect x="{x + step * 0.1:.1f}" y="{height - pad - h:.1f}" width="{step * 0.8:.1f}" '
                    f'height="{h:.1f}" fill="#3c64c8"><title>{_e(label)}: {_e(value)} {_e(unit)}</title></rect>')
    first, last = values[0][0], values[-1][0]
    # The scale is said in the page's own text below the chart, so it reads at the page's size on any width.
    return (f'<figure><svg viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>'
            + "".join(bars) + "</svg>"
            f"<figcaption>{_e(first)} to {_e(last)}; the highest bar is {_e(highest)} {_e(unit)}</figcaption></figure>")


def _table(head: Sequence[str], rows: Sequence[Sequence], numeric_last: bool = True) -> str:
    if not rows:
        return "<p>none</p>"
    cells = "".join("<tr>" + "".join(f'<td{" class=n" if numeric_last and i == len(row) - 1 else ""}>{_e(c)}</td>'
                                     for i, c in enumerate(row)) + "</tr>" for row in rows)
    return ("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + f"</tr></thead><tbody>{cells}"
            "</tbody></table>")


def html_text(rep: Report) -> str:
    times = {"median": rep.median, "95th percentile": rep.p95, "worst": rep.worst}
    cards = [("licenses", rep.licenses)] + [(k, f"{duration(t.minutes)} (#{t.iid})" if t else "-")
                                           for k, t in times.items()]
    i = rep.integrity
    state = ('<span class="ok">every entry signed and chained</span>' if not i.problems
             else f'<span class="bad">DAMAGED: {len(i.problems)} problem{"s" if len(i.problems) != 1 else ""}</span>')
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>License Bot report {rep.since} to {rep.until}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>License Bot report</h1><p class=sub>{rep.since} to {rep.until}, made {rep.today}</p>",
        '<div class=cards>' + "".join(f"<div class=card>{_e(k)}<b>{_e(v)}</b></div>" for k, v in cards) + "</div>",
        "<h2>Licenses per week</h2>",
        _bars([(str(w), c) for w, c in rep.per_week], "licenses", "Licenses per week"),
        "<h2>Filing to email, per license</h2>",
        _bars([(f"#{t.iid}", t.minutes) for t in sorted(rep.emailed, key=lambda t: t.iid)], "min",
              "Minutes from filing to email, per license"),
        "<h2>By requester</h2>", _table(("requester", "licenses"), rep.by_requester),
        "<h2>By customer domain</h2>", _table(("domain", "licenses"), rep.by_domain),
        f"<h2>Repeat customers (within {rep.repeat_window_days} days)</h2>",
        _table(("domain", "licenses", "days apart"), [(r.domain, f"#{r.first}, #{r.second}", r.days)
                                                      for r in rep.repeats]),
        "<h2>Failed requests by reason</h2>", _table(("reason", "requests"), rep.failed),
        f"<h2>Expiring in the next {rep.expiring_days} days</h2>",
        _table(("expires", "issue", "email", "users"), [(r.expires_on, f"#{r.issue_iid}", r.email, r.user_count)
                                                        for r in rep.expiring]),
        f"<h2>Record</h2><p>{i.entries} entries: {state}</p>",
        _table(("trusted key", "entries"), i.keys),
        "".join(f"<p class=bad>{_e(p)}</p>" for p in i.problems),
        "</main></body></html>\n",
    ]
    return "".join(parts)


def render(rep: Report, fmt: str) -> str:
    return {"text": text, "csv": csv_text, "json": json_text, "html": html_text}[fmt](rep)
