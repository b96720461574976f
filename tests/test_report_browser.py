"""The report in a real headless Chromium (tests/cdputil.py, over the DevTools Protocol): every
page loads with no console error and no exception, no request leaves the machine, and the charts
show the numbers the records hold (read from the SVG in the page's DOM)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cdputil import Browser, browser
from gitutil import clone
from siteutil import (
    SHOP_DEPLOYMENTS,
    SHOP_DRILL_S,
    SHOP_MTTR_MIN,
    SHOP_PASS_RATE,
    SHOP_PROVIDER_RATE,
    SHOP_RECOVERY_MIN,
    publish,
)

from pipeline.cli import main

# Per chart on the page: per series (by its legend name) each point's x label, its value as the
# SVG keeps it, and the values printed on the chart.
READ_CHARTS = """
Object.fromEntries([...document.querySelectorAll('figure[data-chart]')].map(figure => {
  const svg = figure.querySelector('svg');
  const names = [...svg.querySelectorAll('.legends .legend text')].map(t => t.textContent);
  const series = {};
  for (const g of svg.querySelectorAll('g.series')) {
    const index = +[...g.classList].find(c => c.startsWith('serie-')).slice(6);
    const entry = series[names[index]] ??= {points: [], printed: []};
    if (g.parentNode.classList.contains('text-overlay')) {
      entry.printed.push(...[...g.querySelectorAll('text.value')].map(t => t.textContent));
    } else {
      for (const desc of g.querySelectorAll('desc.value')) {
        const label = desc.parentNode.querySelector('desc.x_label');
        entry.points.push([label ? label.textContent : null, desc.textContent]);
      }
    }
  }
  return [figure.dataset.chart, series];
}))
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("site")
    reader = clone(publish(tmp), tmp / "reader")
    out = tmp / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp))
        assert main(["report", "--output", str(out), "--repo", str(reader), "--no-fetch"]) == 0
    return out


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with browser(tmp_path_factory.mktemp("chromium")) as running:
        yield running


def pages(site: Path) -> list[Path]:
    manifest = json.loads((site / "knowngood-report.json").read_text())
    return [site / rel for rel in manifest["files"] if rel.endswith(".html")]


def test_every_page_loads_clean_and_nothing_leaves_the_machine(
    site: Path, chromium: Browser
) -> None:
    found = pages(site)
    assert len(found) == 3
    for page in found:
        visit = chromium.visit(
            page.as_uri(), "[document.title, document.querySelectorAll('svg').length]"
        )
        assert visit.problems == [], page
        assert visit.requests and all(u.startswith("file://") for u in visit.requests), page
        title, svgs = visit.value
        assert "knowngood" in title
        assert svgs == (0 if page.name == "index.html" else 5), page


def test_links_between_pages_resolve_inside_the_site(site: Path, chromium: Browser) -> None:
    visit = chromium.visit(
        (site / "index.html").as_uri(),
        "[...document.querySelectorAll('a[href]')].map(a => a.href)",
    )
    links = [u for u in visit.value if not u.split("#")[0].endswith("index.html")]
    assert sorted(links) == sorted(
        (site / "agents" / f"{a}.html").as_uri() for a in ("desk", "shop")
    )
    back = chromium.visit(
        (site / "agents" / "shop.html").as_uri(),
        "document.querySelector('header a').href",
    )
    assert back.value == (site / "index.html").as_uri()


def test_the_detector_catches_a_page_that_reaches_out(site: Path, chromium: Browser) -> None:
    """The same page with an external image and a failing script: both are caught."""
    html = (site / "agents" / "shop.html").read_text()
    bad = site.parent / "bad.html"
    bad.write_text(
        html.replace("</main>", '<img src="https://example.com/x.png"></main>').replace(
            "</head>", "<script>console.error('boom')</script></head>"
        )
    )
    visit = chromium.visit(bad.as_uri())
    assert any("example.com" in p for p in visit.problems), visit.problems


def test_the_charts_show_the_numbers_in_the_records(site: Path, chromium: Browser) -> None:
    visit = chromium.visit((site / "agents" / "shop.html").as_uri(), READ_CHARTS)
    assert visit.problems == []
    charts: dict[str, dict[str, Any]] = visit.value

    def values(chart: str, series: str) -> list[float]:
        entry = charts[chart][series]
        shown = [v for _, v in entry["points"]]
        assert entry["printed"] == shown, (chart, series)  # printed on the chart too
        return [float(v) for v in shown]

    release = charts["pass-rate-release"]["all providers"]["points"]
    assert [(label, float(v)) for label, v in release] == [
        (tag.split("/v")[1], rate) for tag, rate in SHOP_PASS_RATE.items()
    ]
    for env, deployed in SHOP_DEPLOYMENTS.items():  # what ran where: when, which release
        assert [v for _, v in charts["timeline"][env]["points"]] == deployed
    for provider, rates in SHOP_PROVIDER_RATE.items():
        assert values("pass-rate-provider", provider) == rates
    assert values("mttr", "time to recover") == SHOP_RECOVERY_MIN
    assert values("mttr", "MTTR (running mean)") == SHOP_MTTR_MIN
    drills = [values("drills", f"{kind} drill")[0] for kind in ("rollback", "failover", "restore")]
    assert drills == SHOP_DRILL_S
    assert "RTO target" in charts["drills"]  # the target line (15 min, the seed's) is drawn
