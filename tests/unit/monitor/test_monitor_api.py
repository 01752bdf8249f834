"""tidal.monitor's public API is exactly ``__all__``, and the calls the rest of tidal makes keep their shape."""

from __future__ import annotations

import inspect

import tidal.monitor as monitor


def test_all_names_resolve_and_are_sorted() -> None:
    for name in monitor.__all__:
        assert getattr(monitor, name) is not None, name
    assert sorted(monitor.__all__) == monitor.__all__


def test_the_signatures_the_workspace_calls() -> None:
    build = inspect.signature(monitor.build_report)
    assert list(build.parameters) == ["mv", "predictions", "spec", "metrics", "report_id", "now", "embedding",
                                      "stored"]
    assert all(build.parameters[p].kind is inspect.Parameter.KEYWORD_ONLY
               for p in ("metrics", "report_id", "now", "embedding", "stored"))
    assert build.parameters["embedding"].default is None and build.parameters["stored"].default is None
    assert list(inspect.signature(monitor.render_html).parameters) == ["reports", "mv", "path"]
    assert list(inspect.signature(monitor.frame_of).parameters) == ["predictions", "mv"]
    assert list(inspect.signature(monitor.summarize).parameters) == ["report", "notes"]
