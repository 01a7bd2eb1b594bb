"""`windown journal --plot FILE`: pain and sleep over time, their 7-night averages, nights with a session marked.

matplotlib's Agg canvas is used directly (never pyplot), so no display or GUI toolkit is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from windown import atomic
from windown.errors import UserError
from windown.journal import report
from windown.journal.store import Contents

FORMATS = {".png": "png", ".svg": "svg"}
SIZE_IN = (9.0, 5.5)
DPI = 100  # a PNG is 900 x 550 pixels


def check_target(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"--plot: '{path.name}' must end in .png or .svg", "Write e.g. --plot journal.png")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UserError("--plot: its folder does not exist", "Create the folder first, or choose another place",
                        path=folder)
    return path


def write(contents: Contents, path: str | os.PathLike) -> Path:
    """Draw the journal into `path` (PNG or SVG by its suffix), atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, DateFormatter
    from matplotlib.figure import Figure

    path = check_target(path)
    by_night = report.nights(contents)
    days = list(by_night)
    fig = Figure(figsize=SIZE_IN, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    pain_ax, sleep_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))

    def series(name: str):
        points = [(d, getattr(by_night[d], name)) for d in days if getattr(by_night[d], name) is not None]
        return [p[0] for p in points], [p[1] for p in points]

    def averages(name: str):
        points = [(d, report.rolling(by_night, d, name)) for d in days]
        points = [p for p in points if p[1] is not None]
        return [p[0] for p in points], [p[1] for p in points]

    for name, label, colour in (("pain", "evening pain", "tab:orange"),
                                ("pain_waking", "waking pain", "tab:red")):
        xs, ys = series(name)
        pain_ax.plot(xs, ys, "o", color=colour, alpha=0.5, markersize=4, label=label)
        xs, ys = averages(name)
        pain_ax.plot(xs, ys, "-", color=colour, linewidth=2, label=f"{label}, {report.ROLLING_NIGHTS}-night average")
    pain_ax.set_ylim(-0.5, 10.5)
    pain_ax.set_ylabel("pain (0-10)")
    pain_ax.legend(loc="upper left", fontsize="small", ncols=2)
    xs, ys = series("sleep")
    sleep_ax.plot(xs, ys, "o", color="tab:blue", alpha=0.5, markersize=4, label="sleep quality")
    xs, ys = averages("sleep")
    sleep_ax.plot(xs, ys, "-", color="tab:blue", linewidth=2, label=f"{report.ROLLING_NIGHTS}-night average")
    sleep_ax.set_ylim(0.5, 5.5)
    sleep_ax.set_yticks([1, 2, 3, 4, 5], ["very poor", "poor", "fair", "good", "very good"])
    sleep_ax.legend(loc="upper left", fontsize="small", ncols=2)
    session_days = [d for d in days if by_night[d].sessions]
    for ax in (pain_ax, sleep_ax):
        for i, day in enumerate(session_days):
            ax.axvline(day, color="tab:green", alpha=0.15, linewidth=3,
                       label="night with a session" if (ax is pain_ax and i == 0) else None)
        ax.grid(True, axis="y", alpha=0.3)
    if session_days:
        pain_ax.legend(loc="upper left", fontsize="small", ncols=3)
    sleep_ax.xaxis.set_major_locator(AutoDateLocator(minticks=3, maxticks=8))
    sleep_ax.xaxis.set_major_formatter(DateFormatter("%d %b"))
    pain_ax.set_title("windown journal: pain and sleep")
    if not days:
        pain_ax.text(0.5, 0.5, "no entries yet", ha="center", va="center", transform=pain_ax.transAxes)
    with atomic.replacing(path) as temp:
        os.chmod(temp, 0o600)  # health data, like the journal itself
        fig.savefig(temp, format=FORMATS[path.suffix.lower()])
    return path
