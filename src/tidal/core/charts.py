"""Charts in an offline HTML page: the dashboard's charting library (uPlot) and its chart helper (``charts.js``)
inlined once, each chart's description (a spec) embedded as JSON, drawn in the browser when the page opens.

The two offline reports (``tidal monitor --html``, ``tidal backtest --html``) draw their charts with this, so
they are the dashboard's charts (hover shows the values, drag zooms, a double click resets, axes in value
units), and they still open on a machine with no network: nothing is fetched. The files are read from the
installed package (``tidal/ui/static``, shipped in the wheel) without importing :mod:`tidal.ui` (its server).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from html import escape
from importlib import resources
from typing import Any

#: The files every page inlines, in order: the library, its style, the helper that turns specs into charts.
LIBRARY, STYLE, HELPER = "uPlot.iife.min.js", "uPlot.min.css", "charts.js"
#: Where the specs sit in the page (``<script type="application/json">``: data, never run).
SPECS_ID = "tidal-charts"
_CSS = ".chart{margin:4px 0}.chart .u-title{font-size:13px}.chart .u-legend{font-size:11px}"


def asset(name: str) -> str:
    """One of the dashboard's static files, as text, from the installed package."""
    return (resources.files("tidal") / "ui" / "static" / name).read_text(encoding="utf-8")


def short(value: Any, digits: int = 6) -> float | None:
    """A number for a spec: ``digits`` significant digits (the page stays small and shows no raw values to
    16 digits), ``None`` for a missing or infinite one (a gap in the line)."""
    if value is None:
        return None
    number = float(value)
    return float(f"{number:.{digits}g}") if math.isfinite(number) else None


class Charts:
    """The charts of one page: :meth:`box` places one, :meth:`style` and :meth:`scripts` write the library
    (once, whatever the number of charts), the specs and the call that draws them."""

    def __init__(self) -> None:
        self.specs: dict[str, dict[str, Any]] = {}

    def box(self, spec: Mapping[str, Any], *, name: str | None = None) -> str:
        """The element the chart of ``spec`` is drawn into (see ``charts.js`` for what a spec holds);
        ``name`` (default: its title) is its ``data-chart``, what tests and readers find it by."""
        key = f"c{len(self.specs)}"
        self.specs[key] = dict(spec)
        label = name or str(spec.get("name") or spec.get("title") or key)
        return f"<div class='chart' data-spec='{key}' data-chart='{escape(label)}'></div>"

    def style(self) -> str:
        """The ``<style>`` for the ``<head>``: uPlot's own, and a few lines of ours."""
        return f"<style>{asset(STYLE)}{_CSS}</style>"

    def scripts(self) -> str:
        """The scripts, for the end of the ``<body>`` (the boxes are in the page by then)."""
        # "<" as \u003c: a name such as "</script>" from user data cannot close the element early
        data = json.dumps(self.specs, separators=(",", ":"), allow_nan=False)
        data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return (f"<script>{asset(LIBRARY)}</script><script>{asset(HELPER)}</script>"
                f"<script type='application/json' id='{SPECS_ID}'>{data}</script>"
                f"<script>TidalCharts.drawAll(JSON.parse(document.getElementById('{SPECS_ID}').textContent));"
                "</script>")


def read_specs(page: str) -> dict[str, dict[str, Any]]:
    """The specs a page written with :class:`Charts` embeds, by key (for tests and tools)."""
    found = re.search(rf"<script type='application/json' id='{SPECS_ID}'>(.*?)</script>", page, re.S)
    return {} if found is None else dict(json.loads(found.group(1)))


__all__ = ["HELPER", "LIBRARY", "SPECS_ID", "STYLE", "Charts", "asset", "read_specs", "short"]
