"""``knowngood report --output DIR``: a static site from the records, written atomically.

A fresh clone of a published history (tests/siteutil.py) is reported on; the pages must hold
every section with the figures of the records, reference nothing outside the site, and the
output directory is either new, empty, or a previous report (its manifest says so).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from gitutil import clone
from siteutil import P1_INCIDENT, publish

from pipeline.cli import main
from pipeline.schemas import validator

MANIFEST = "knowngood-report.json"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return publish(tmp_path_factory.mktemp("published"))


@pytest.fixture
def reader(published: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--mirror", str(published), str(bare)], check=True)
    return clone(bare, tmp_path / "reader")


def report(repo: Path, out: Path, *args: str) -> int:
    return main(["report", "--output", str(out), "--repo", str(repo), *args])


def external_references(html: str) -> list[str]:
    """Every reference a browser would follow out of the page (the SVG namespace is a name)."""
    refs = re.findall(r"""(?:src|href|action)\s*=\s*["']([^"']*)""", html)
    refs += re.findall(r"url\(\s*['\"]?([^)'\"]+)", html)
    refs += re.findall(r"@import\s+['\"]?([^;'\"]+)", html)
    return [r for r in refs if re.match(r"^(https?:)?//", r)]


def test_the_site_has_every_section_with_the_records_figures(
    reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert report(reader, out, "--format", "json") == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["output"] == str(out)
    assert outcome["agents"] == ["desk", "shop"]
    assert sorted(outcome["pages"]) == ["agents/desk.html", "agents/shop.html", "index.html"]
    manifest = json.loads((out / MANIFEST).read_text())
    assert list(validator("report-site").iter_errors(manifest)) == []
    assert manifest["kind"] == "knowngood-report" and manifest["agents"] == ["desk", "shop"]
    assert sorted(manifest["files"]) == sorted([*outcome["pages"], MANIFEST])

    shop = (out / "agents" / "shop.html").read_text()
    for section in (
        "Releases",
        "Pass rate per release",
        "Pass rate per provider",
        "Incidents",
        "MTTR",
        "Drills",
        "Breakers and failover",
        "Readiness",
    ):
        assert f">{section}" in shop, section
    # the release timeline: what ran where (production runs v0.1.0 again after the rollback)
    assert "shop/v0.1.0" in shop and "shop/v0.2.0" in shop
    assert re.search(r'data-running="production"[^>]*>[^<]*shop/v0\.1\.0', shop)
    assert re.search(r'data-running="staging"[^>]*>[^<]*shop/v0\.2\.0', shop)
    # incidents with their timelines, the newer record's severity and acknowledgement shown
    assert P1_INCIDENT in shop and ">P1<" in shop
    assert "every provider down &lt;script&gt;alert(1)&lt;/script&gt;" in shop  # escaped
    assert re.search(r"acknowledged</strong> 2026-02-01 10:21:00 by alice", shop)
    assert re.search(r"mitigated</strong> 2026-02-01 10:22:00 by bob", shop)
    # MTTA over the one acknowledged incident (1 min), MTTR per severity (the P1 is open)
    assert re.search(r"acknowledge over 1 acknowledged incident\(s\): <strong>60 s<", shop)
    assert re.search(r"<td>P1</td><td>1</td><td>—</td>", shop)
    assert re.search(r"<td>P2</td><td>2</td><td>3.5 min</td>", shop)
    # drill figures, the failover figures, the restore drill's RPO against its target
    assert "first_fallback_s" in shop and "0.4" in shop
    assert "rpo_s" in shop and "1800" in shop
    # the readiness checklist of `knowngood readiness`, the items about shop on its page
    assert "no readiness check in this version" not in shop
    assert "Rollback drill" in shop or "rollback drill" in shop.lower()
    for page in ("index.html", "agents/shop.html", "agents/desk.html"):
        html = (out / page).read_text()
        assert html.count("<svg") == (0 if page == "index.html" else 5), page
        assert "<script" not in html and "<link" not in html, page
        assert external_references(html) == [], page


def test_a_previous_report_is_replaced_and_an_empty_directory_used(
    reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    out.mkdir()
    assert report(reader, out) == 0
    first = (out / MANIFEST).read_text()
    assert report(reader, out) == 0
    assert (out / MANIFEST).read_text() != first  # a new generation, not the old files
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["origin.git", "reader", "site"]


@pytest.mark.parametrize(
    "content",
    [
        {"notes.txt": "mine"},
        {MANIFEST: "{not json", "index.html": "x"},
        {MANIFEST: json.dumps({"kind": "something-else"})},
    ],
)
def test_a_directory_that_is_not_a_report_is_refused_and_left_alone(
    reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: dict[str, str]
) -> None:
    out = tmp_path / "docs"
    out.mkdir()
    for name, text in content.items():
        (out / name).write_text(text)
    before = {p.name: p.read_text() for p in out.iterdir()}
    assert report(reader, out) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "not a knowngood report" in err and "hint:" in err
    assert {p.name: p.read_text() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs", "origin.git", "reader"]


def test_a_report_with_files_its_manifest_does_not_list_is_refused(
    reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert report(reader, out) == 0
    (out / "CNAME").write_text("reports.example.com\n")
    capsys.readouterr()
    assert report(reader, out) == 2
    err = capsys.readouterr().err
    assert "CNAME" in err and "would be lost" in err
    assert (out / "CNAME").exists()


def test_an_output_that_is_a_file_is_a_usage_error(
    reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site.html"
    out.write_text("x")
    assert report(reader, out) == 2
    assert "is a file" in capsys.readouterr().err
    assert out.read_text() == "x"


def test_breaker_events_from_the_state_store(reader: Path, tmp_path: Path) -> None:
    from pipeline.runtime.breaker import Breakers
    from pipeline.runtime.settings import BreakerSettings
    from pipeline.runtime.store import StateStore

    now = [1_780_000_000.0]
    db = tmp_path / "elsewhere" / "state.db"
    db.parent.mkdir()
    store = StateStore(db)
    breakers = Breakers(store, clock=lambda: now[0])
    settings = BreakerSettings(window=4, minimum_calls=2, open_s=10.0, half_open_calls=1)
    for _ in range(2):
        ticket = breakers.acquire("openai", settings)
        assert ticket is not None
        breakers.record(ticket, settings, failed=True, slow=False, agent="shop")
    store.close()
    out = tmp_path / "site"
    assert report(reader, out, "--state-store", f"sqlite:///{db}") == 0
    shop = (out / "agents" / "shop.html").read_text()
    assert "closed → open" in shop and "thresholds reached" in shop
    assert "2026-05-28 20:26:40" in shop
    index = (out / "index.html").read_text()
    assert re.search(r"openai.*open", index, re.S)
    # no store where knowngood.yaml points: no breaker section rows, and none is created
    out2 = tmp_path / "site2"
    assert report(reader, out2) == 0
    assert not (reader / ".knowngood" / "state.db").exists()
    assert "no state store" in (out2 / "index.html").read_text()


def test_an_unreadable_state_store_is_a_usage_error(
    reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "site"
    assert report(reader, out, "--state-store", "postgresql://x/y") == 2
    assert "state_store" in capsys.readouterr().err
    assert not out.exists()


def test_the_readiness_slot_renders_the_items_when_the_module_exists(
    reader: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lead wires pipeline.readiness at merge; until then a stand-in shows the slot works."""
    module = types.ModuleType("pipeline.readiness")

    def items(root: Path, settings: object) -> list[dict[str, object]]:
        return [
            {"item": "rollback drill in the last 30 days", "ok": True, "detail": "12.5 s"},
            {"item": "two vendors in every chain", "ok": False, "detail": "shop: openai only"},
            {"item": "an owner", "ok": False, "detail": "desk has no owner", "agent": "desk"},
        ]

    module.readiness_items = items  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pipeline.readiness", module)
    out = tmp_path / "site"
    assert report(reader, out) == 0
    shop = (out / "agents" / "shop.html").read_text()
    assert "rollback drill in the last 30 days" in shop and "shop: openai only" in shop
    assert "no readiness check in this version" not in shop
    assert "desk has no owner" not in shop  # another agent's item
    assert "desk has no owner" in (out / "agents" / "desk.html").read_text()
    assert "desk has no owner" in (out / "index.html").read_text()


def test_help_imports_neither_litellm_nor_pygal() -> None:
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        "try:\n    main(['report', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('litellm', 'pygal', 'dbos') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_a_report_leaves_no_import_hook_behind(reader: Path, tmp_path: Path) -> None:
    """pygal appends a legacy import hook; the report removes it, so later imports of absent
    modules in the same process do not warn (an error under -W error)."""
    import importlib.util
    import warnings

    assert report(reader, tmp_path / "site") == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert importlib.util.find_spec("pipeline.no_such_module") is None


def test_a_repository_with_no_records_or_releases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from repoutil import make_repo

    repo = make_repo(tmp_path / "repo", agents=("shop",))
    out = tmp_path / "site"
    assert report(repo, out, "--no-fetch") == 0
    assert ", 1 agent, 0 releases, 0 records (" in capsys.readouterr().out  # no "1 agents"
    shop = (out / "agents" / "shop.html").read_text()
    assert "no release yet" in shop and "no incident recorded" in shop
    assert "no drill recorded" in shop and "nothing deployed" in shop
    assert "no agents yet" not in (out / "index.html").read_text()
