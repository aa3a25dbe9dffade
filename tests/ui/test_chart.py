"""Server-side metric charts: geometry inside the plot area, non-finite values left out, long histories sampled."""

from __future__ import annotations

from gateway.ui.chart import BOTTOM, LEFT, MAX_POINTS, RIGHT, TOP, metric_chart


def _points(chart) -> list[tuple[float, float]]:
    return [tuple(map(float, p.split(","))) for p in chart.points.split()]


def test_points_span_the_plot_area_in_step_order():
    chart = metric_chart("loss", [{"step": s, "value": v} for s, v in ((2, 1.0), (0, 3.0), (1, 2.0))])
    points = _points(chart)
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert points[0] == (LEFT, TOP)  # step 0 has the largest value: top left
    assert points[-1] == (RIGHT, BOTTOM)
    assert chart.count == 3
    assert chart.sampled is False


def test_non_finite_values_are_skipped_and_an_all_nan_metric_has_no_chart():
    chart = metric_chart("m", [{"step": 0, "value": 1.0}, {"step": 1, "value": "NaN"},
                               {"step": 2, "value": float("inf")}])
    assert chart.count == 1
    assert chart.single is not None  # one point is drawn as a dot, not a line
    assert metric_chart("m", [{"step": 0, "value": "NaN"}]) is None


def test_long_histories_are_sampled_keeping_the_last_point():
    chart = metric_chart("m", [{"step": s, "value": s} for s in range(5 * MAX_POINTS)])
    points = _points(chart)
    assert len(points) == MAX_POINTS
    assert chart.count == 5 * MAX_POINTS
    assert chart.sampled is True
    assert points[-1] == (RIGHT, TOP)
