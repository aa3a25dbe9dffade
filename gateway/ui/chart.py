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


def _finite_points(history: list[dict]) -> list[tuple[float, float]]:
    points = [(float(p["step"]), float(p["value"])) for p in history
              if isinstance(p["value"], int | float) and math.isfinite(p["value"])]
    points.sort(key=lambda p: p[0])
    return points


def _sampled(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = len(points) / MAX_POINTS
    return [points[int(i * stride)] for i in range(MAX_POINTS - 1)] + [points[-1]]


def _scales(all_points: list[tuple[float, float]]):
    xs, ys = [p[0] for p in all_points], [p[1] for p in all_points]
    x_lo, x_hi, y_lo, y_hi = min(xs), max(xs), min(ys), max(ys)

    def x_px(x: float) -> float:
        return LEFT + (RIGHT - LEFT) * ((x - x_lo) / (x_hi - x_lo) if x_hi > x_lo else 0.5)

    def y_px(y: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * ((y - y_lo) / (y_hi - y_lo) if y_hi > y_lo else 0.5)

    return x_px, y_px, _ticks(x_lo, x_hi, x_px), _ticks(y_lo, y_hi, y_px)


def metric_chart(key: str, history: list[dict]) -> Chart | None:
    """The chart of one metric's (step, value) points; non-finite values are left out."""
    points = _finite_points(history)
    if not points:
        return None
    count = len(points)
    points = _sampled(points)
    x_px, y_px, x_ticks, y_ticks = _scales(points)
    coords = [(round(x_px(x), 1), round(y_px(y), 1)) for x, y in points]
    return Chart(
        key=key, points=" ".join(f"{x},{y}" for x, y in coords), count=count, sampled=count > MAX_POINTS,
        single=coords[0] if len(coords) == 1 else None, x_ticks=x_ticks, y_ticks=y_ticks,
    )


@dataclass(frozen=True)
class Line:
    """One run's curve in an overlaid chart; ``series`` picks its colour (series-0 ... series-9)."""

    label: str
    points: str
    single: tuple[float, float] | None
    count: int
    series: int


@dataclass(frozen=True)
class Overlay:
    """One metric's curves of several runs on shared axes."""

    key: str
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    sampled: bool
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = RIGHT
    top: int = TOP
    bottom: int = BOTTOM


def overlay_chart(key: str, histories: list[tuple[str, list[dict]]]) -> Overlay | None:
    """The curves of ``key`` for several runs (label, history) on one pair of axes; None without data."""
    series = [(i, label, _finite_points(history)) for i, (label, history) in enumerate(histories)]
    counts = {i: len(points) for i, _, points in series}
    series = [(i, label, _sampled(points)) for i, label, points in series if points]
    if not series:
        return None
    x_px, y_px, x_ticks, y_ticks = _scales([p for _, _, points in series for p in points])
    lines = []
    for i, label, points in series:
        coords = [(round(x_px(x), 1), round(y_px(y), 1)) for x, y in points]
        lines.append(Line(label=label, points=" ".join(f"{x},{y}" for x, y in coords),
                          single=coords[0] if len(coords) == 1 else None, count=counts[i], series=i % 10))
    return Overlay(key=key, lines=lines, x_ticks=x_ticks, y_ticks=y_ticks,
                   sampled=any(c > MAX_POINTS for c in counts.values()))
