"""A metric's history as SVG geometry, computed on the server (no script, no inline style)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 468, 12, 190
MAX_POINTS = 500  # more than the chart's width in pixels: enough for the eye, small for the page


@dataclass(frozen=True)
class Tick:
    """One axis label at a pixel position."""

    pos: float
    label: str


@dataclass(frozen=True)
class Chart:
    """What the run template draws for one metric."""

    key: str
    points: str
    count: int
    sampled: bool
    single: tuple[float, float] | None
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM


def _label(value: float) -> str:
    return f"{value:.4g}"


def _ticks(lo: float, hi: float, to_px, n: int = 4) -> list[Tick]:
    if hi == lo:
        return [Tick(round(to_px(lo), 1), _label(lo))]
    return [Tick(round(to_px(lo + (hi - lo) * i / n), 1), _label(lo + (hi - lo) * i / n)) for i in range(n + 1)]


def metric_chart(key: str, history: list[dict]) -> Chart | None:
    """The chart of one metric's (step, value) points; non-finite values are left out."""
    points = [(float(p["step"]), float(p["value"])) for p in history
              if isinstance(p["value"], int | float) and math.isfinite(p["value"])]
    if not points:
        return None
    points.sort(key=lambda p: p[0])
    count = len(points)
    sampled = count > MAX_POINTS
    if sampled:
        stride = count / MAX_POINTS
        points = [points[int(i * stride)] for i in range(MAX_POINTS - 1)] + [points[-1]]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)

    def x_px(x: float) -> float:
        return LEFT + (RIGHT - LEFT) * ((x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5)

    def y_px(y: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * ((y - y_lo) / (y_hi - y_lo) if y_hi > y_lo else 0.5)

    coords = [(round(x_px(x), 1), round(y_px(y), 1)) for x, y in points]
    return Chart(
        key=key, points=" ".join(f"{x},{y}" for x, y in coords), count=count, sampled=sampled,
        single=coords[0] if len(coords) == 1 else None,
        x_ticks=_ticks(x_lo, x_hi, x_px), y_ticks=_ticks(y_lo, y_hi, y_px),
    )
