"""The time series of the dashboard: Prometheus range queries over a selectable window.

Each chart is a few PromQL expressions with ``$rate`` standing for the rate window, which
grows with the page's window so that a 24 h chart is smooth and a 15 min chart still shows
seconds. A chart whose metric no worker exports yet (consumer lag, restore progress on an
older engine) comes back empty and the page says "no data".

>>> WINDOWS["15 min"].step_s, WINDOWS["15 min"].rate, WINDOWS["24 h"].rate
(3.0, '1m', '19m')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dashboard.objectives import LATENCY_OBJECTIVE_S
from dashboard.prometheus import PrometheusAPI

logger = logging.getLogger(__name__)

LATENCY = "sentinel_event_to_verdict_latency_seconds_bucket"
POINTS_PER_WINDOW = 300


@dataclass(frozen=True)
class Window:
    label: str
    seconds: int

    @property
    def step_s(self) -> float:
        return max(1.0, self.seconds / POINTS_PER_WINDOW)

    @property
    def rate(self) -> str:
        """The rate() window: at least a minute (four 15 s scrapes), at least four steps."""
        return f"{max(1, round(4 * self.step_s / 60))}m"

    def axis_start(self, now: float, first_sample: float | None,
                   events: list[float]) -> float:
        """Where the time axis starts (epoch seconds): with the data when the window reaches
        back before it (two steps before its first sample), or with the earliest timeline
        event inside the window when that is earlier, so that every event's marker is drawn.

        >>> w = Window("15 min", 900)
        >>> w.axis_start(10_000, 9_500, [])       # data for the last 500 s
        9494.0
        >>> w.axis_start(10_000, 9_500, [9_400])  # an event before the first sample
        9400
        >>> w.axis_start(10_000, 9_500, [8_000])  # an event before the window: not drawn
        9494.0
        >>> w.axis_start(10_000, None, [])
        9100
        """
        begin = min([first_sample - 2 * self.step_s if first_sample is not None
                     else now - self.seconds, *(t for t in events if t >= now - self.seconds)])
        return max(now - self.seconds, begin)


WINDOWS = {w.label: w for w in (Window("15 min", 900), Window("1 h", 3600),
                                Window("24 h", 86_400))}


@dataclass(frozen=True)
class Chart:
    """One chart: named expressions, the labels that name a series, the axis unit."""

    key: str
    title: str
    unit: str
    exprs: tuple[tuple[str, str], ...]
    legend: tuple[str, ...] = ()
    scale: float = 1.0
    objective: float | None = None  # a horizontal line, in the chart's unit
    objective_text: str = ""


def _quantile(q: float) -> str:
    return f"1000 * histogram_quantile({q}, sum by (le) (rate({LATENCY}[$rate])))"


CHARTS: tuple[Chart, ...] = (
    Chart("throughput", "Throughput", "transactions / s",
          (("transactions", "sum(rate(sentinel_transactions_total[$rate]))"),)),
    Chart("verdicts", "Verdicts by decision", "verdicts / s",
          (("", "sum by (decision) (rate(sentinel_verdicts_total[$rate]))"),), ("decision",)),
    Chart("flag_rate", "Flag rate (review + decline)", "% of verdicts",
          (("flagged", 'sum(rate(sentinel_verdicts_total{decision!="approve"}[$rate]))'
                       " / sum(rate(sentinel_verdicts_total[$rate]))"),), scale=100),
    Chart("latency", "Event-to-verdict latency", "ms",
          (("p50", _quantile(0.5)), ("p99", _quantile(0.99))),
          objective=LATENCY_OBJECTIVE_S * 1000, objective_text="objective 50 ms"),
    Chart("dead_letters", "Dead letters by reason", "dead letters / s",
          (("", "sum by (reason) (rate(sentinel_dead_letters_total[$rate]))"),), ("reason",)),
    Chart("shadow", "Shadow agreement", "% of shadow-scored",
          (("agreement", 'sum(rate(sentinel_shadow_results_total{agree="true"}[$rate]))'
                         " / sum(rate(sentinel_shadow_results_total[$rate]))"),), scale=100,
          objective=95.0, objective_text="objective 95 %"),
    Chart("lag", "Consumer lag per partition", "messages behind",
          (("", "sum by (topic, partition) (sentinel_consumer_lag)"),), ("topic", "partition")),
    Chart("restore", "State restore progress", "restored (as exported)",
          (("", "sentinel_restore_progress"),), ("partition", "store", "instance")),
)


@dataclass(frozen=True)
class ChartData:
    """A chart's rows (unix time, series name, value) and, when it failed, why."""

    chart: Chart
    rows: list[tuple[float, str, float]]
    error: str = ""

    @property
    def series(self) -> list[str]:
        return sorted({name for _, name, _ in self.rows})


def read_charts(api: PrometheusAPI, window: Window, now: float) -> list[ChartData]:
    """Every chart over ``[now - window, now]``. A rejected query leaves its chart empty with
    the error; SourceUnavailable (Prometheus down) propagates."""
    start = now - window.seconds
    out = []
    for chart in CHARTS:
        rows: list[tuple[float, str, float]] = []
        error = ""
        for name, template in chart.exprs:
            expr = template.replace("$rate", window.rate)
            try:
                found = api.query_range(expr, start, now, window.step_s)
            except ValueError as exc:
                logger.warning("range query failed chart=%s error=%s", chart.key, exc)
                error = str(exc)
                continue
            for series in found:
                label = series_name(name, series.labels, chart.legend)
                rows.extend((t, label, v * chart.scale) for t, v in series.points
                            if v is not None)
        out.append(ChartData(chart, rows, error))
    return out


def series_name(name: str, labels: dict[str, str], legend: tuple[str, ...]) -> str:
    """``p99``, ``decline``, ``sentinel.transactions/2``: the legend entry of a series.

    >>> series_name("", {"topic": "tx", "partition": "2"}, ("topic", "partition"))
    'tx/2'
    """
    parts = [labels[k] for k in legend if k in labels]
    return " ".join(p for p in (name, "/".join(parts)) if p) or "value"
