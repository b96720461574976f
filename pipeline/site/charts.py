"""The report's charts: pygal SVG, inlined in the page. No JavaScript (``js=[]``), no external
stylesheet (pygal inlines its CSS), no XML declaration, no comments: a page that holds them
makes no request and runs no script. Values are printed on the chart (up to :data:`PRINTED_POINTS` points) and
kept in each point's ``<desc class="value">``, so a reader and a test see the same numbers."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from pipeline.records import parse_time
from pipeline.site.model import Release
from pipeline.site.views import DrillView, Targets, day

Graph = Any  # pygal's charts (pygal ships no type information)
PRINTED_POINTS = 40  # beyond this, printed values overlap: the <desc> still holds them
MAX_X_LABELS = 20
# pygal writes its config into an inline <script> even with js=[] (for tooltips that are not
# loaded): dropped, with its comments, so the pages hold no script at all (see the CSP in
# templates/base.html.j2).
_DROPPED = re.compile(r"<!--.*?-->|<script\b.*?</script>", re.S)


def _pygal() -> Any:
    """pygal, without the import hook it appends to ``sys.meta_path`` (for its map plugins,
    unused here): that hook has no ``find_spec``, so every later import of a module that does
    not exist would warn (an error under the tests' ``-W error``)."""
    import pygal

    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]
    return pygal


def _chart(kind: str, title: str, labels: Sequence[str], **config: Any) -> Graph:
    chart: Graph = getattr(_pygal(), kind)(
        js=[],
        disable_xml_declaration=True,
        title=title,
        width=800,
        height=360,
        print_values=len(labels) <= PRINTED_POINTS,
        x_label_rotation=30 if len(labels) > 8 else 0,
        show_minor_x_labels=len(labels) <= MAX_X_LABELS,
        x_labels_major_every=max(1, len(labels) // MAX_X_LABELS),
        truncate_label=24,
        no_data_text="no data yet",
        legend_at_bottom=True,
        **config,
    )
    chart.x_labels = list(labels)
    return chart


def _svg(chart: Graph) -> Markup:
    text = chart.render(is_unicode=True)
    return Markup(_DROPPED.sub("", text))  # pygal's own SVG: it escapes the values


def timeline(releases: Sequence[Release], envs: Sequence[str]) -> Markup:
    """What ran where: each successful deployment as a dot at (when, release), one series per
    environment; the y axis names the releases."""
    names = {r.tag.name: (n, str(r.tag.version)) for n, r in enumerate(releases, 1)}
    versions = dict(names.values())  # ordinal -> version
    every = max(1, len(releases) // MAX_X_LABELS)
    points = {
        env: sorted(
            (parse_time(str(dep["at"])), names[r.tag.name][0])
            for r in releases
            for dep in r.deployed.get(env, [])
        )
        for env in envs
    }
    count = sum(len(p) for p in points.values())
    chart = _pygal().DateTimeLine(
        js=[],
        disable_xml_declaration=True,
        title="What ran where: deployments (UTC)",
        width=800,
        height=360,
        print_values=False,  # "when: version" labels overlap; the axes say both
        x_label_rotation=30,
        x_value_formatter=lambda when: when.strftime("%Y-%m-%d %H:%M"),
        value_formatter=lambda n: versions.get(n, str(n)),
        # (pygal cannot place y labels on an XY chart with no point)
        y_labels=[i for i, _ in names.values() if (i - 1) % every == 0] if count else None,
        no_data_text="nothing deployed yet",
        legend_at_bottom=True,
    )
    for env in envs:
        if points[env]:
            chart.add(env, points[env], stroke=False)
    return _svg(chart)


def pass_rate_per_release(releases: Sequence[Release]) -> Markup:
    rated = [r for r in releases if r.overall is not None]
    chart = _chart(
        "Bar", "Pass rate per release (%)", [str(r.tag.version) for r in rated], range=(0, 100)
    )
    chart.add("all providers", [r.overall.percent if r.overall else None for r in rated])
    return _svg(chart)


def pass_rate_per_provider(releases: Sequence[Release]) -> Markup:
    rated = [r for r in releases if r.providers]
    providers = sorted({p for r in rated for p in r.providers})
    chart = _chart(
        "Line", "Pass rate per provider (%)", [str(r.tag.version) for r in rated], range=(0, 100)
    )
    for provider in providers:
        chart.add(
            provider,
            [r.providers[provider].percent if provider in r.providers else None for r in rated],
        )
    return _svg(chart)


def mttr(trend: Sequence[tuple[str, float, float]]) -> Markup:
    chart = _chart(
        "Line",
        "Time to recover and MTTR (minutes)",
        [day(at) for at, _, _ in trend],
        include_x_axis=True,
    )
    chart.add("time to recover", [round(s / 60, 2) for _, s, _ in trend])
    chart.add("MTTR (running mean)", [round(m / 60, 2) for _, _, m in trend])
    return _svg(chart)


def drills(views: Sequence[DrillView], targets: Targets) -> Markup:
    kinds = sorted({v.kind for v in views})
    chart = _chart(
        "Line",
        "Drill recovery time (s) against the RTO",
        [day(str(v.record["at"])) for v in views],
        include_x_axis=True,
    )
    for kind in kinds:
        chart.add(
            f"{kind} drill",
            [v.recovery_s if v.kind == kind else None for v in views],
            stroke=False,
        )
    if views:
        chart.add("RTO target", [targets.rto_s] * len(views), show_dots=False, print_values=False)
    return _svg(chart)
