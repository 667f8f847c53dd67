"""``nb2prod compare --html FILE``: one self-contained page (inline CSS and SVG, no scripts).

The same tables as the terminal output, each compared run's step reports linked (relative to
FILE, so the page and the run folders can move together), and a chart of each metric over
all successful runs of the pipeline in time order: people would rather look at a trend than
read it. Every value from a record or a notebook is HTML-escaped.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from ..errors import Nb2prodError
from ..run_folder import write_record
from .code import ABSENT, SAME
from .tables import Comparison
from .text import gate_cell, metric_cell, run_line, shown
from .trend import Trend, build_trends

WIDTH, HEIGHT, PAD_X, PAD_TOP, PAD_BOTTOM = 640, 210, 56, 24, 40  # room below for labels

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:72em;
 padding:0 1em;color:#1f2328}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.4em 0}
th,td{border:1px solid #d0d7de;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.num{font-family:ui-monospace,monospace}
.better{color:#1a7f37}.worse{color:#cf222e}.passed{color:#1a7f37}.failed{color:#cf222e}
.muted{color:#57606a}.changed{color:#9a6700;font-weight:600}
figure{margin:1em 0}figcaption{font-weight:600}
svg{border:1px solid #d0d7de;background:#fff}
svg .line{fill:none;stroke:#8c959f;stroke-width:1.5}
svg .pt{fill:#8c959f}svg .cmp{fill:#0969da;stroke:#fff;stroke-width:1.5}
svg .champ{fill:none;stroke:#bf8700;stroke-width:2.5}
svg text{font:11px system-ui,sans-serif;fill:#57606a}svg .lbl{fill:#0969da;font-weight:700}
svg .clbl{fill:#9a6700;font-weight:700}
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """``rows`` cells are HTML already (escaped by the caller)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(text)}</td>' if cls else f"<td>{_e(text)}</td>"


def _link(page: Path, folder: str, path: str) -> str:
    """``folder/path`` relative to the page's folder, as a URL."""
    target = (Path(folder) / path).resolve()
    rel = os.path.relpath(target, page.resolve().parent)
    return quote(Path(rel).as_posix())


def _runs(c: Comparison, page: Path) -> str:
    rows = []
    for r in c.runs:
        links = ", ".join(
            f'<a href="{_e(_link(page, r.folder, f.path))}">{_e(f.step)}'
            f"{'' if f.kind == 'report' else ' (notebook)'}</a>"
            for f in r.files
        )
        note = run_line(r).split(r.status, 1)[-1].strip()
        rows.append(
            [
                f"<th>{_e(r.label)}</th>",
                _td(r.id, "num"),
                _td(f"{r.pipeline} v{r.version}"),
                _td(r.status),
                _td(note),
                f"<td>{links}</td>",
            ]
        )
    return _table(["", "run", "pipeline", "status", "notes", "steps"], rows)


def _parameters(c: Comparison) -> str:
    if not c.parameters:
        return "<p class='muted'>All the same.</p>"
    labels = [r.label for r in c.runs]
    rows = [
        [_td(p.name), *(_td(shown(v, exact=True), "num") for v in p.values)] for p in c.parameters
    ]
    return _table(["parameter", *labels], rows)


def _metrics(c: Comparison) -> str:
    if not c.metrics:
        return "<p class='muted'>None recorded.</p>"
    labels = [r.label for r in c.runs]
    rows = []
    for m in c.metrics:
        cells = [_td(m.name)]
        for i in range(len(c.runs)):
            cls = {True: "num better", False: "num worse", None: "num"}[m.better[i]]
            cells.append(_td(metric_cell(m, i), cls))
        rows.append(cells)
    return _table(["metric", *labels], rows)


def _gates(c: Comparison) -> str:
    if not c.gates and not any(c.gate_status):
        return "<p class='muted'>None checked.</p>"
    labels = [r.label for r in c.runs]
    rows = []
    for g in c.gates:
        cells = [_td(g.expr, "num")]
        for cell in g.results:
            cls = cell.status if cell is not None and cell.status in ("passed", "failed") else ""
            title = f' title="{_e(cell.reason)}"' if cell is not None and cell.reason else ""
            cells.append(f'<td class="{cls}"{title}>{_e(gate_cell(cell))}</td>')
        rows.append(cells)
    rows.append(
        [
            _td("overall"),
            *(_td(s or "-", s if s in ("passed", "failed") else "") for s in c.gate_status),
        ]
    )
    return _table(["gate", *labels], rows)


def _code(c: Comparison) -> str:
    if not c.code:
        return "<p class='muted'>No steps known (version folders missing).</p>"
    labels = [r.label for r in c.runs[1:]]
    rows = [
        [
            _td(row.step),
            *(_td(ch, "" if ch in (SAME, ABSENT) else "changed") for ch in row.changes[1:]),
        ]
        for row in c.code
    ]
    return _table(["step", *labels], rows)


def chart(trend: Trend) -> str:
    """An inline SVG line chart of one metric over the runs, in time order."""
    points = trend.points
    values = [p.value for p in points]
    low, high = min(values), max(values)
    if high == low:
        low, high = low - (abs(low) or 1) * 0.05, high + (abs(high) or 1) * 0.05
    span_x = (WIDTH - 2 * PAD_X) / max(len(points) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = PAD_X + i * span_x if len(points) > 1 else WIDTH / 2
        y = HEIGHT - PAD_BOTTOM - (v - low) / (high - low) * (HEIGHT - PAD_TOP - PAD_BOTTOM)
        return round(x, 1), round(y, 1)

    coords = [xy(i, p.value) for i, p in enumerate(points)]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(trend.metric)} over runs">',
        f'<text x="4" y="{PAD_TOP + 4}">{_e(shown(high))}</text>',
        f'<text x="4" y="{HEIGHT - PAD_BOTTOM + 4}">{_e(shown(low))}</text>',
    ]
    if len(coords) > 1:
        line = " ".join(f"{x},{y}" for x, y in coords)
        parts.append(f'<polyline class="line" points="{line}"/>')
    for p, (x, y) in zip(points, coords, strict=True):
        tip = f"{p.run_id} ({p.started_at or 'unknown start'}): {shown(p.value)}"
        cls = "cmp" if p.label else "pt"
        radius = 5 if p.label else 3
        title = f"<title>{_e(tip)}</title>"
        parts.append(f'<circle class="{cls}" cx="{x}" cy="{y}" r="{radius}">{title}</circle>')
        if p.label:
            parts.append(f'<text class="lbl" x="{x + 7}" y="{y - 7}">{_e(p.label)}</text>')
        if p.champion:
            parts.append(f'<circle class="champ" cx="{x}" cy="{y}" r="9"/>')
            parts.append(f'<text class="clbl" x="{x + 7}" y="{y + 16}">champion</text>')
    first, last = points[0].started_at or "", points[-1].started_at or ""
    parts.append(f'<text x="{PAD_X}" y="{HEIGHT - 4}">{_e(first)}</text>')
    if len(points) > 1:
        parts.append(
            f'<text x="{WIDTH - PAD_X}" y="{HEIGHT - 4}" text-anchor="end">{_e(last)}</text>'
        )
    parts.append("</svg>")
    caption = f"{trend.pipeline}: {trend.metric} over {len(points)} successful runs"
    return f"<figure><figcaption>{_e(caption)}</figcaption>{''.join(parts)}</figure>"


def render_html(page: Path, comparison: Comparison, trends: list[Trend]) -> str:
    c = comparison
    pipelines = ", ".join(dict.fromkeys(r.pipeline for r in c.runs))
    title = f"nb2prod compare: {pipelines} ({', '.join(r.id for r in c.runs)})"
    base = c.runs[0]
    charts = "".join(chart(t) for t in trends) or "<p class='muted'>No metrics to chart.</p>"
    body = [
        f"<h1>{_e(title)}</h1>",
        "<h2>Runs</h2>",
        _runs(c, page),
        "<h2>Parameters that differ</h2>",
        _parameters(c),
        f"<h2>Metrics (deltas against {_e(base.label)})</h2>",
        _metrics(c),
        "<h2>Gates</h2>",
        _gates(c),
        f"<h2>Step code against {_e(base.label)} ({_e(base.pipeline)} v{_e(base.version)})</h2>",
        _code(c),
        "<h2>Metrics over the pipeline's runs</h2>",
        "<p class='muted'>Every successful run in time order; compared runs are labelled, "
        "the champion is ringed.</p>",
        charts,
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_html(page: Path, home: Path, comparison: Comparison) -> None:
    """Write the page to ``page`` atomically: a reader never sees half of it."""
    text = render_html(page, comparison, build_trends(home, comparison))
    try:
        page.parent.mkdir(parents=True, exist_ok=True)
        write_record(page, text)
    except OSError as exc:
        raise Nb2prodError(
            f"compare: cannot write {page} ({exc.strerror or exc}). Fix: pass --html a file in "
            "a folder you can write to."
        ) from None
