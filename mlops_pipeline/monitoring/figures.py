"""evidently's plotly figures drawn for less CPU, the same as plotly draws them.

evidently draws each plot of a report as a plotly figure and keeps its JSON. Two things plotly does
for every figure took about a third of a monitoring report's CPU (0.73 s of a direction model's
report on 13 features, 0.53 s inside :func:`figures_drawn_cheaply`) and change nothing the stored
snapshot keeps:

- it copies its default layout template (6.9 kB) into every figure, and the stored snapshot drops
  it (:func:`~mlops_pipeline.monitoring.evidently_report.merge_snapshots`);
- it parses each property path it is given (``"xaxis_title_text"``) anew: about 40,000 times in a
  report, for about 110 distinct paths.

Inside :func:`figures_drawn_cheaply`, figures get no default template and plotly's path parser
remembers what it parsed (it is a function of the path alone); plotly is put back as it was when
the block ends. The parsed paths stay remembered for the process's next reports.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PATHS_REMEMBERED = 4096
_LOCK = threading.Lock()

PathParser = Callable[[Any], tuple[tuple[Any, ...], list[int]]]


@functools.cache
def _remembering(parse: PathParser) -> PathParser:
    """``parse`` (plotly's ``_str_to_dict_path_full``) with its results for text paths remembered;
    each call still gets its own list of positions, as from ``parse``."""

    @functools.lru_cache(maxsize=PATHS_REMEMBERED)
    def parsed(path: str) -> tuple[tuple[Any, ...], tuple[int, ...]]:
        elements, positions = parse(path)
        return elements, tuple(positions)

    def parse_remembered(path: Any) -> tuple[tuple[Any, ...], list[int]]:
        if not isinstance(path, str):
            return parse(path)
        elements, positions = parsed(path)
        return elements, list(positions)

    return parse_remembered


@contextmanager
def figures_drawn_cheaply() -> Iterator[None]:
    """Figures drawn inside get no default template and reuse parsed property paths (one block at
    a time in a process)."""
    # evidently sets the colours of plotly's default template when this module is first imported,
    # which may be during a report: it needs the default template in place.
    import evidently.legacy.ui.dashboards.utils  # noqa: F401
    import plotly.basedatatypes
    import plotly.io

    with _LOCK:
        template = plotly.io.templates.default
        parse = plotly.basedatatypes._str_to_dict_path_full
        plotly.io.templates.default = None
        plotly.basedatatypes._str_to_dict_path_full = _remembering(parse)
        try:
            yield
        finally:
            plotly.basedatatypes._str_to_dict_path_full = parse
            plotly.io.templates.default = template
