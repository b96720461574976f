"""``knowngood report --output DIR``: the request, the outcome, and the one core function."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.changes.revision import at_root
from pipeline.git import Git
from pipeline.records import utc_now
from pipeline.repo import Settings, discover
from pipeline.site import charts, model, views
from pipeline.site.breakers import Breakers, read_breakers
from pipeline.site.output import KIND, MANIFEST, check_output, write_site
from pipeline.site.readiness import Readiness, readiness
from pipeline.site.render import render_agent, render_index
from pipeline.source import Source, committed_settings


@dataclass(frozen=True, slots=True)
class ReportRequest:
    output: Path
    state_store: str | None = None  # a state store URL; None: knowngood.yaml's runtime.state_store
    fetch: bool = True


@dataclass(slots=True)
class ReportOutcome:
    output: Path
    pages: list[str]
    agents: list[str]
    replaced: bool  # a previous report was replaced
    records: int
    releases: int
    duration_s: float
    source: Source | None = None
    notices: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "output": str(self.output),
            "pages": self.pages,
            "agents": self.agents,
            "replaced": self.replaced,
            "records": self.records,
            "releases": self.releases,
            "duration_s": round(self.duration_s, 3),
            "notices": self.notices,
        }


def run(root: Path, request: ReportRequest) -> ReportOutcome:
    """Read the records, tags and breakers; render one page per agent and an index; write them
    atomically into ``request.output`` (refused, before anything is read, when that is neither
    new, empty nor a previous report)."""
    started = time.perf_counter()
    out = request.output.absolute()
    replaced = check_output(out)
    settings, source = committed_settings(root)
    git = at_root(Git(root), root)
    data = model.read(git, settings.records_branch, fetch=request.fetch)
    breakers = read_breakers(root, settings, request.state_store)
    ready = readiness(root, settings)
    agents = sorted(set(discover(root).agents) | data.agents())
    targets = views.Targets.from_settings(settings.raw)
    pages = {
        f"agents/{agent}.html": render_agent(
            _agent_context(data, agent, settings, breakers, ready, targets)
        )
        for agent in agents
    }
    generated = utc_now()
    pages["index.html"] = render_index(
        {
            "agents": [_summary(data, a) for a in agents],
            "breakers": breakers,
            "readiness": ready,
            "generated_at": views.day(generated),
            "records_branch": settings.records_branch,
            "notices": data.notices,
        }
    )
    manifest = {
        "version": 1,
        "kind": KIND,
        "generated_at": generated,
        "records_branch": settings.records_branch,
        "agents": agents,
        "files": sorted([*pages, MANIFEST]),
    }
    write_site(out, pages, manifest)
    return ReportOutcome(
        out,
        sorted(pages),
        agents,
        replaced,
        data.record_count,
        sum(len(t) for t in data.tags.values()),
        time.perf_counter() - started,
        source,
        data.notices,
    )


def _agent_context(
    data: model.Data,
    agent: str,
    settings: Settings,
    breakers: Breakers,
    ready: Readiness,
    targets: views.Targets,
) -> dict[str, Any]:
    releases = model.releases(data, agent)
    now = model.running(data, agent)
    envs = list(settings.environments) + sorted(
        {e for r in releases for e in r.deployed} - set(settings.environments)
    )
    incidents = views.incidents(data.of("incident", agent))
    trend = views.mttr_trend(incidents)
    drills = views.drills(data.of("drill", agent))
    return {
        "agent": agent,
        "envs": envs,
        "releases": list(reversed(releases)),  # newest first in the table
        "running": {env: dep.get("release") for env, dep in now.items()},
        "incidents": incidents,
        "mttr_s": trend[-1][2] if trend else None,
        "mtta": views.mean_time_to(incidents, "acknowledged"),
        "severities": views.by_severity(incidents),
        "drills": list(reversed(drills)),
        "failovers": [d for d in reversed(drills) if "failover" in d.figures],
        "targets": targets,
        "breakers": breakers.for_agent(agent),
        "breakers_notice": breakers.notice,
        "readiness": ready.for_agent(agent),
        "charts": {
            "timeline": charts.timeline(releases, envs),
            "pass_rate_release": charts.pass_rate_per_release(releases),
            "pass_rate_provider": charts.pass_rate_per_provider(releases),
            "mttr": charts.mttr(trend),
            "drills": charts.drills(drills, targets),
        },
    }


def _summary(data: model.Data, agent: str) -> dict[str, Any]:
    tags = data.tags.get(agent, [])
    incidents = views.incidents(data.of("incident", agent))
    trend = views.mttr_trend(incidents)
    drills = data.of("drill", agent)
    return {
        "agent": agent,
        "latest": tags[-1].name if tags else None,
        "releases": len(tags),
        "running": {env: dep.get("release") for env, dep in model.running(data, agent).items()},
        "open_incidents": sum(1 for i in incidents if i.status == "open"),
        "incidents": len(incidents),
        "mttr_s": trend[-1][2] if trend else None,
        "drills": len(drills),
        "drills_passed": sum(1 for d in drills if d.get("outcome") == "passed"),
    }
