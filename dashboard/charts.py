"""Vega-Lite charts (Altair) of the dashboard: time series with their objective line and the
timeline's markers, and reference-vs-live bins.

Charts are drawn as SVG (``usermeta.embedOptions.renderer``): every point is an element with
an accessible label, which screen readers read and the browser test counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

import altair as alt
import pandas as pd

from dashboard.drift_panel import Drift
from dashboard.series import ChartData
from dashboard.timeline import Marker

HEIGHT = 240
MARKER_COLOURS = {"promotion": "#2ca02c", "rollback": "#d62728", "registration": "#1f77b4",
                  "drift alert": "#ff7f0e", "rejection": "#7f7f7f", "alias moved": "#9467bd"}
_SVG = {"embedOptions": {"renderer": "svg"}}


def time_series(data: ChartData, markers: Sequence[Marker], start: datetime,
                end: datetime) -> alt.LayerChart:
    """Lines with a point per sample; the objective as a dashed red rule; markers as vertical
    rules coloured by kind, with the event in the tooltip."""
    chart = data.chart
    frame = pd.DataFrame(data.rows, columns=["time", "series", "value"])
    frame["time"] = pd.to_datetime(frame["time"], unit="s", utc=True)
    scale = alt.Scale(domain=[start.isoformat(), end.isoformat()])
    span = (end - start).total_seconds()
    fmt = "%H:%M:%S" if span <= 900 else ("%H:%M" if span <= 86_400 else "%d %b %H:%M")
    x = alt.X("time:T", title="time", scale=scale, axis=alt.Axis(format=fmt, labelAngle=0))
    y = alt.Y("value:Q", title=chart.unit, scale=alt.Scale(zero=True))
    lines = alt.Chart(frame).mark_line(
        point=alt.OverlayMarkDef(size=18, filled=True)
    ).encode(x=x, y=y, color=alt.Color("series:N", title=None,
                                       legend=alt.Legend(orient="top", labelLimit=320)),
             tooltip=[alt.Tooltip("time:T", format="%H:%M:%S"), "series:N",
                      alt.Tooltip("value:Q", format=",.3f", title=chart.unit)])
    layers: list[alt.Chart] = [lines]
    if chart.objective is not None:
        rule = pd.DataFrame({"value": [chart.objective], "label": [chart.objective_text]})
        base = alt.Chart(rule)
        layers.append(base.mark_rule(color="#d62728", strokeDash=[6, 4], strokeWidth=2)
                      .encode(y="value:Q"))
        layers.append(base.mark_text(color="#d62728", align="left", dx=4, dy=-6)
                      .encode(y="value:Q", x=alt.value(0), text="label:N"))
    shown = [m for m in markers if start <= m.at <= end]
    if shown:
        events = pd.DataFrame({"time": [m.at for m in shown], "event": [m.kind for m in shown],
                               "version": [m.model_version for m in shown],
                               "detail": [m.detail for m in shown]})
        kinds = sorted(set(events["event"]))
        layers.append(alt.Chart(events).mark_rule(strokeWidth=2, opacity=0.8).encode(
            x="time:T",
            color=alt.Color("event:N", title="timeline", scale=alt.Scale(
                domain=kinds, range=[MARKER_COLOURS.get(k, "#8c564b") for k in kinds])),
            tooltip=["event:N", "version:N", "detail:N",
                     alt.Tooltip("time:T", format="%Y-%m-%d %H:%M:%S")]))
    return cast(alt.LayerChart, alt.layer(*layers).resolve_scale(color="independent").properties(
        title=chart.title, height=HEIGHT, usermeta=_SVG))


def bins(drift: Drift, title: str) -> alt.Chart:
    """Reference and live shares side by side, bins in numeric order."""
    rows = drift.rows()
    frame = pd.DataFrame(
        [{**r, "sample": "training reference", "share": r["reference"]} for r in rows]
        + [{**r, "sample": "live window", "share": r["live"]} for r in rows])
    order = [str(r["bin"]) for r in rows]
    return cast(alt.Chart, alt.Chart(frame, title=title).mark_bar().encode(
        x=alt.X("bin:N", sort=order, title=f"{drift.variable} (reference quantile bins)",
                axis=alt.Axis(labelAngle=-35, labelOverlap=False, labelLimit=140)),
        xOffset=alt.XOffset("sample:N", sort=["training reference", "live window"]),
        y=alt.Y("share:Q", title="share of the sample", axis=alt.Axis(format="%")),
        color=alt.Color("sample:N", title=None, sort=["training reference", "live window"],
                        scale=alt.Scale(range=["#9ecae1", "#e6550d"]),
                        legend=alt.Legend(orient="top")),
        tooltip=["bin:N", "sample:N", alt.Tooltip("share:Q", format=".1%")],
    ).properties(height=340, usermeta=_SVG))
