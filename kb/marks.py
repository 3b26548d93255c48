"""What the pages' charts draw beside their data: a target's line and label, a tick where a bar stands at 0, and
the colour scale of one meaning (a tier, an impact). Altair only: the pages draw the charts (``kb.ui.chart``)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from kb import formats

HALO = {"stroke": "white", "strokeWidth": 4, "strokeJoin": "round"}  # a label's outline, under the label


def target_rule(target: float, what: str = "target") -> list[alt.Chart]:
    """A dashed horizontal line at ``target`` and its label 'target 95.00 %' at the left end: layers to add to a
    chart, ``alt.layer(chart, *target_rule(95))``. One row of data of their own, so each is drawn once. The label
    is drawn twice, first as a white outline (``HALO``), so that it reads where a bar rises past the line."""
    one = pd.DataFrame({"target": [target]})
    # The channels' own classes: Altair reads ``alt.datum``/``alt.value`` dicts through its schema, ~20 ms each.
    line = alt.Chart(one).mark_rule(strokeDash=[4, 4], color="#424242").encode(y=alt.YDatum(target))
    encoding = dict(x=alt.XValue(0), y=alt.YDatum(target), text=alt.TextValue(f"{what} {formats.term(target)}"))
    text = dict(align="left", baseline="bottom", dx=4, dy=-3, fontWeight="bold")
    halo = alt.Chart(one).mark_text(**text, color="white", **HALO).encode(**encoding)
    label = alt.Chart(one).mark_text(**text, color="#424242").encode(**encoding)
    return [line, halo, label]


def zero_marks(bars: alt.Chart, field: str = "pct_met") -> alt.Chart:
    """A layer to draw over ``bars``: where a bar's ``field`` is 0 (a month whose every decided target was
    breached), a tick on the axis in the bar's place, colour and tooltip. A bar at 0 has no height, so it would
    read as a month with nothing decided."""
    return bars.mark_tick(thickness=4, yOffset=-2, opacity=1).transform_filter(f"datum.{field} === 0")


def drawn_colors(colors: dict[str, str], drawn) -> dict[str, str]:
    """The colours of the values in ``drawn`` (those the chart draws a mark for), in the order of ``colors``; all
    of them when it draws none. A legend names only what the chart draws: a tier with nothing decided has no bar
    and no line."""
    shown = set(drawn)
    return {value: color for value, color in colors.items() if value in shown} or colors


def color_scale(colors: dict[str, str], labels: dict[str, str] | None = None) -> alt.Scale:
    domain = list(colors)
    if labels:
        domain = [labels[k] for k in colors]
    return alt.Scale(domain=domain, range=list(colors.values()))
