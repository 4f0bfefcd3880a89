"""/stats as a picture: the usage log drawn as one PNG that reads well on a phone.

Three panels share a time axis: requests per bucket stacked by task (filled
steps) with the errors over them, p50 and p95 latency, and active users. The image is 1080 ×
1350 pixels (the portrait shape Telegram shows full width) with large type,
far inside Telegram's photo limits (10 MB, width + height ≤ 10000).

Drawing is blocking CPU work: callers run `render_usage_chart` in a worker
thread (`asyncio.to_thread`), never on the event loop. Matplotlib's object
API draws on the Agg canvas directly, never through pyplot, so no GUI backend
or global figure list is involved; its style settings are global, so renders
take turns under a lock. Labels are English: the chart is drawn with the fonts every
install has, which lack Chinese glyphs; the caption beside it is localized.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np
from matplotlib import dates as mdates
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from models.usage import Bucket, UsageSeries

WIDTH_PX, HEIGHT_PX, DPI = 1080, 1350, 150
MAX_TASK_COLOURS = 7  # beyond these, the quietest tasks are drawn together as "other"
STYLE: dict[Any, Any] = {
    "font.size": 15,
    "axes.titlesize": 17,
    "axes.titleweight": "bold",
    "axes.labelsize": 14,
    "xtick.labelsize": 13,
    "ytick.labelsize": 13,
    "legend.fontsize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
_PALETTE = ("#4C72B0", "#55A868", "#8172B2", "#CCB974", "#64B5CD", "#DD8452", "#937860")
_ERRORS, _OTHER = "#C44E52", "#B0B0B0"
_lock = threading.Lock()


def render_usage_chart(series: UsageSeries, title: str) -> bytes:
    """The PNG of `series` under `title` (blocking: call it in a worker thread)."""
    edges = mdates.date2num([*series.starts, series.until_edge])
    with _lock, rc_context(STYLE):
        figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
        FigureCanvasAgg(figure)
        figure.subplots_adjust(left=0.1, right=0.97, top=0.91, bottom=0.08, hspace=0.32)
        requests, latency, users = figure.subplots(3, 1, sharex=True, height_ratios=(3, 2, 2))
        figure.suptitle(title, fontsize=19, fontweight="bold")
        _requests_panel(requests, series, edges)
        _latency_panel(latency, series, edges)
        _users_panel(users, series, edges)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=6)
        users.xaxis.set_major_locator(locator)
        users.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        users.set_xlim(edges[0], edges[-1])
        users.set_xlabel("UTC")
        out = io.BytesIO()
        figure.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def per_bucket(step: timedelta) -> str:
    """'hour', '6 hours', 'day': what one step of the chart stands for."""
    if step == timedelta(days=1):
        return "day"
    hours = round(step / timedelta(hours=1))
    return "hour" if hours == 1 else f"{hours} hours"


def _requests_panel(axes: Axes, series: UsageSeries, edges: Sequence[float]) -> None:
    """Requests stacked by task as filled steps (one shape per task, cheap to draw)."""
    bottom = np.zeros(len(series.total))
    for (name, buckets), colour in zip(_stacks(series), (*_PALETTE, _OTHER), strict=False):
        top = bottom + [bucket.requests for bucket in buckets]
        axes.stairs(top, edges, baseline=bottom, fill=True, color=colour, label=name)
        bottom = top
    middles = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
    axes.plot(
        middles,
        [bucket.errors for bucket in series.total],
        color=_ERRORS,
        linewidth=2.5,
        marker="o",
        markersize=4,
        label="errors",
    )
    axes.set_title(f"Requests per {per_bucket(series.step)}", loc="left")
    axes.set_ylim(bottom=0, top=max(1.0, float(bottom.max())) * 1.45)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if series.summary.requests:
        axes.legend(loc="upper left", ncols=4, frameon=False, handlelength=1.2, columnspacing=1)
    else:
        axes.text(0.5, 0.5, "No requests", transform=axes.transAxes, ha="center", va="center")


def _stacks(series: UsageSeries) -> list[tuple[str, list[Bucket]]]:
    """One stack per task, busiest first; past the palette the rest is summed as 'other'."""
    busiest = sorted(series.by_task.items(), key=lambda item: -sum(b.requests for b in item[1]))
    if len(busiest) <= MAX_TASK_COLOURS:
        return busiest
    shown, rest = busiest[: MAX_TASK_COLOURS - 1], busiest[MAX_TASK_COLOURS - 1 :]
    other = [
        Bucket(slot[0].start, sum(b.requests for b in slot), 0, None, None, 0)
        for slot in zip(*(buckets for _, buckets in rest), strict=True)
    ]
    return [*shown, ("other", other)]


def _latency_panel(axes: Axes, series: UsageSeries, edges: Sequence[float]) -> None:
    middles = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
    for name, values, style in (
        ("p50", [b.p50_ms for b in series.total], "-"),
        ("p95", [b.p95_ms for b in series.total], "--"),
    ):
        points = [np.nan if value is None else value for value in values]
        axes.plot(middles, points, style, linewidth=2.5, marker="o", markersize=4, label=name)
    axes.set_title("Latency (ms)", loc="left")
    axes.set_ylim(bottom=0)
    if series.summary.requests:
        axes.legend(loc="upper left", ncols=2, frameon=False)


def _users_panel(axes: Axes, series: UsageSeries, edges: Sequence[float]) -> None:
    counts = [bucket.active_users for bucket in series.total]
    axes.stairs(counts, edges, fill=True, color=_PALETTE[0])
    axes.set_title("Active users", loc="left")
    axes.set_ylim(bottom=0, top=max(1, *counts) * 1.15)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
