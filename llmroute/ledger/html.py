"""A self-contained HTML spend report: inline SVG charts and the totals table, nothing external.

No scripts, no fonts, no images: one file a person can open or mail. Each bar is an SVG
``rect`` carrying its exact figure in a ``data-*`` attribute and a ``<title>`` tooltip, so the
page can be checked by parsing it and read by hovering.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape, quoteattr

from .names import shown_name
from .reports import UsageReport

__all__ = ["render_html"]

_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
            "#ff9da7", "#9c755f", "#bab0ac")
_SVG = 'xmlns="http://www.w3.org/2000/svg"'
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.total td { font-weight: bold; border-top: 2px solid #888; }
svg text { font-size: 11px; fill: #333; }
.legend span { display: inline-block; margin-right: 1.2em; }
.legend i { display: inline-block; width: 0.9em; height: 0.9em; margin-right: 0.3em; }
"""


def _money(value: Decimal) -> str:
    return "${:,.2f}".format(value)


def _colour(index: int) -> str:
    return _PALETTE[index % len(_PALETTE)]


def _text(value: object) -> str:
    """``value`` as HTML/SVG text: names made XML-safe (``shown_name``), then escaped."""
    return escape(shown_name(str(value)))


def _attrs(**values: object) -> str:
    return " ".join("%s=%s" % (k.rstrip("_").replace("_", "-"), quoteattr(shown_name(str(v))))
                    for k, v in values.items())


def _spend_svg(rows: Sequence[Tuple[str, str, Decimal]], models: List[str]) -> str:
    days = sorted({day for day, _, _ in rows})
    cost: Dict[Tuple[str, str], Decimal] = {(d, m): c for d, m, c in rows}
    totals = {d: sum((cost.get((d, m), Decimal(0)) for m in models), Decimal(0)) for d in days}
    peak = float(max(totals.values(), default=Decimal(0))) or 1.0
    width, height, left, bottom, top = 760, 300, 70, 40, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    step = plot_w / max(len(days), 1)
    bar = max(step * 0.8, 1.0)
    parts = ["<svg %s %s>" % (_SVG, _attrs(width=width, height=height, role="img",
                                            aria_label="spend per day by model"))]
    for i in range(5):  # y axis: five gridlines
        value = peak * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append('<line %s/>' % _attrs(x1=left, x2=width - 10, y1="%.1f" % y, y2="%.1f" % y,
                                           stroke="#eee"))
        parts.append('<text %s>%s</text>' % (_attrs(x=left - 6, y="%.1f" % (y + 4),
                                                    text_anchor="end"), _text("$%.2f" % value)))
    label_every = max(1, len(days) // 12)
    for i, day in enumerate(days):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        for j, model in enumerate(models):
            value = cost.get((day, model), Decimal(0))
            h = plot_h * float(value) / peak
            y -= h
            parts.append('<rect %s><title>%s</title></rect>' % (
                _attrs(class_="bar", x="%.2f" % x, y="%.2f" % y, width="%.2f" % bar,
                       height="%.2f" % h, fill=_colour(j), data_day=day, data_model=model,
                       data_cost=value),
                _text("%s %s %s" % (day, model, _money(value)))))
        if i % label_every == 0:
            parts.append('<text %s>%s</text>' % (
                _attrs(x="%.1f" % (x + bar / 2), y=height - bottom + 16, text_anchor="middle"),
                _text(day[5:])))
    parts.append("</svg>")
    return "".join(parts)


def _hbars_svg(label: str, series: Sequence[Tuple[str, Sequence[Tuple[str, float, str]]]],
               css_class: str, unit: str) -> str:
    """Horizontal grouped bars: for each name, one bar per (series name, value, shown text)."""
    per = max((len(values) for _, values in series), default=1)
    row_h, bar_h, left, width = 14 * per + 10, 12, 150, 760
    height = row_h * max(len(series), 1) + 10
    peak = max((v for _, values in series for _, v, _ in values), default=0.0) or 1.0
    plot_w = width - left - 140
    parts = ["<svg %s %s>" % (_SVG, _attrs(width=width, height=height, role="img",
                                            aria_label=label))]
    for i, (name, values) in enumerate(series):
        y0 = 5 + i * row_h
        parts.append('<text %s>%s</text>' % (_attrs(x=left - 8, y=y0 + 12, text_anchor="end"),
                                             _text(name)))
        for j, (what, value, shown) in enumerate(values):
            y = y0 + j * 14
            w = plot_w * value / peak
            parts.append('<rect %s><title>%s</title></rect>' % (
                _attrs(class_=css_class, x=left, y=y, width="%.2f" % w, height=bar_h,
                       fill=_colour(j), data_name=name, data_series=what, data_value=value),
                _text("%s %s: %s" % (name, what, shown))))
            parts.append('<text %s>%s</text>' % (_attrs(x="%.1f" % (left + w + 4), y=y + 10),
                                                 _text("%s %s" % (what, shown))))
    parts.append("</svg>")
    return "".join(parts)


def _legend(names: Sequence[str]) -> str:
    return '<p class="legend">%s</p>' % "".join(
        '<span><i style="background:%s"></i>%s</span>' % (_colour(i), _text(n))
        for i, n in enumerate(names))


def _table(report: UsageReport) -> str:
    head = ("requests", "errors", "tokens in", "tokens out", "cached", "cost USD", "p50 ms",
            "p95 ms", "p99 ms")
    out = ['<table><tr><th>%s</th>%s</tr>' % (_text(report.by), "".join(
        '<th class="n">%s</th>' % h for h in head))]

    def ms(v: Optional[float]) -> str:
        return "-" if v is None else "%.0f" % v

    for group, css in [(g, "") for g in report.groups] + [(report.total, "total")]:
        cells = ("{:,}".format(group.requests), "{:,}".format(group.errors),
                 "{:,}".format(group.prompt_tokens), "{:,}".format(group.completion_tokens),
                 "{:,}".format(group.cached_tokens), str(group.cost_usd), ms(group.p50_ms),
                 ms(group.p95_ms), ms(group.p99_ms))
        out.append('<tr class="%s"><td>%s</td>%s</tr>' % (
            css, _text(group.key or "(none)"), "".join('<td class="n">%s</td>' % _text(c)
                                                        for c in cells)))
    out.append("</table>")
    return "".join(out)


def render_html(report: UsageReport, daily: Sequence[Tuple[str, str, Decimal]], *,
                title: str = "llmroute spend report", source: str = "") -> str:
    """The page for a by-model ``report`` and its ``daily_spend`` rows."""
    models = [g.key for g in report.groups]
    models += sorted({m for _, m, _ in daily} - set(models))
    tokens = [(g.key, [("in", float(g.prompt_tokens), "{:,}".format(g.prompt_tokens)),
                       ("out", float(g.completion_tokens), "{:,}".format(g.completion_tokens))])
              for g in report.groups]
    latency = [(g.key, [(name, value or 0.0, "-" if value is None else "%.0f ms" % value)
                        for name, value in (("p50", g.p50_ms), ("p95", g.p95_ms),
                                            ("p99", g.p99_ms))])
               for g in report.groups]
    period = "%s to %s (UTC, until exclusive)" % (report.since or "the first row",
                                                 report.until or "now")
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>%s</title><style>%s</style></head><body>" % (_text(title), _STYLE),
        "<h1>%s</h1><p>%s%s. Total %s over %s requests.</p>" % (
            _text(title), _text(source + ", " if source else ""), _text(period),
            _text(_money(report.total.cost_usd)), "{:,}".format(report.total.requests)),
        "<h2>Spend per day, by model</h2>", _legend(models), _spend_svg(daily, models),
        "<h2>Tokens per model</h2>", _hbars_svg("tokens per model", tokens, "tokens", "tokens"),
        "<h2>Latency percentiles per model</h2>",
        _hbars_svg("latency percentiles per model", latency, "latency", "ms"),
        "<h2>Totals</h2>", _table(report), "</body></html>\n",
    ])
