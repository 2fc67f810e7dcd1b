"""Charts drawn on the server as inline SVG: no script, no CDN, nothing for a browser to fetch.

Each chart is a function of its numbers; every bar carries a `<title>` (the browser's tooltip) with its exact
value, since a bar's height is only ever an approximation.
"""

from collections.abc import Callable, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH = 640
HEIGHT = 160
AXIS = 18  # room under the bars for the first, middle and last label
BAR_COLOR = "#417690"


def _n(value: float) -> str:
    """A coordinate, written before escaping (format_html escapes its arguments into text)."""
    return f"{value:.1f}"


def _no_data(height: int) -> SafeString:
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="no data"><text x="{}" y="{}" '
        'text-anchor="middle" fill="#888">Nothing in this range</text></svg>',
        WIDTH,
        height,
        WIDTH // 2,
        height // 2,
    )


def bar_chart(
    points: Sequence[tuple[str, float]], *, label: Callable[[float], str] = str, color: str = BAR_COLOR
) -> SafeString:
    """Vertical bars, one per point (a day), scaled to the largest; the scale's top is written in a corner."""
    if not points or not any(value for _, value in points):
        return _no_data(HEIGHT)
    top = max(value for _, value in points)
    plot = HEIGHT - AXIS
    step = WIDTH / len(points)
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}</title></rect>',
        (
            (
                _n(index * step + step * 0.1),
                _n(plot - plot * value / top),
                _n(step * 0.8),
                _n(plot * value / top),
                color,
                name,
                label(value),
            )
            for index, (name, value) in enumerate(points)
        ),
    )
    ticks = {0: "start", len(points) // 2: "middle", len(points) - 1: "end"}
    axis = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="{}" font-size="11" fill="#666">{}</text>',
        ((_n(index * step + step / 2), HEIGHT - 4, anchor, points[index][0]) for index, anchor in ticks.items()),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {w} {h}" role="img" aria-label="{n} bars, largest {top}">'
        '<line x1="0" y1="{plot}" x2="{w}" y2="{plot}" stroke="#ccc"/>{bars}{axis}'
        '<text x="2" y="11" font-size="11" fill="#666">{top}</text></svg>',
        w=WIDTH,
        h=HEIGHT,
        n=len(points),
        top=label(top),
        plot=plot,
        bars=bars,
        axis=axis,
    )


def share_bars(rows: Sequence[tuple[str, int]], *, colors: dict[str, str] | None = None) -> SafeString:
    """Horizontal bars for parts of a whole (orders by status): the count and the share beside each."""
    total = sum(count for _, count in rows)
    if not total:
        return _no_data(40)
    colors = colors or {}
    line = 22
    label_width = 150
    bar_room = WIDTH - label_width - 110
    drawn = format_html_join(
        "",
        '<text x="0" y="{y}" font-size="12" dominant-baseline="middle">{name}</text>'
        '<rect x="{x}" y="{top}" width="{width}" height="14" fill="{color}"><title>{name}: {count}</title></rect>'
        '<text x="{after}" y="{y}" font-size="12" dominant-baseline="middle" fill="#444">{count} ({share})</text>',
        (
            {
                "y": _n(index * line + line / 2),
                "top": _n(index * line + 4),
                "name": name,
                "x": label_width,
                "width": _n(max(1.0, bar_room * count / total)),
                "color": colors.get(name, BAR_COLOR),
                "count": f"{count:,}",
                "after": _n(label_width + max(1.0, bar_room * count / total) + 6),
                "share": f"{count / total:.0%}",
            }
            for index, (name, count) in enumerate(rows)
        ),
    )
    return format_html(
        '<svg class="chart" viewBox="0 0 {} {}" role="img" aria-label="{} rows">{}</svg>',
        WIDTH,
        len(rows) * line,
        len(rows),
        drawn,
    )


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
