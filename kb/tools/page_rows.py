"""How many rows a page rendered through Streamlit's AppTest sends to the browser in one chart or table.

Shared by the bench, which reports the most on any page, and by the tests, which hold every page to at most
``ROWS_SENT_LIMIT`` on the bench's 100 000-case data set.
"""

from __future__ import annotations

import pyarrow as pa

ROWS_SENT_LIMIT = 5000  # the most rows one chart or table may carry to the browser


def rows_sent(at) -> int:
    """The most rows any one dataframe, table or chart on the rendered page (an AppTest) carries to the browser."""

    def count(data: bytes) -> int:
        return pa.ipc.open_stream(data).read_all().num_rows if data else 0

    most = 0
    stack = [at._tree]
    while stack:
        node = stack.pop()
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            stack.extend(children.values())
        kind = getattr(node, "type", "")
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        if kind in ("dataframe", "table"):
            sent = count(proto.arrow_data.data)
            if kind == "dataframe" and proto.HasField("lazy_data"):  # the first chunk; the rest on demand
                sent = max(sent, count(proto.lazy_data.initial_chunk.data))
            most = max(most, sent)
        elif "vega_lite_chart" in kind:
            sizes = [count(d.data.data) for d in proto.datasets]
            if proto.HasField("data"):
                sizes.append(count(proto.data.data))
            most = max(most, sum(sizes))
    return most
