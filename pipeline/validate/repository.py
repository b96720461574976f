"""``knowngood validate``: every file, every schema, every cross-reference. Returns findings."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import schemas
from pipeline.findings import Finding
from pipeline.loading import load, read_text
from pipeline.repo import CONFIG_FILE, Layout, Repo, Settings, build_agent, discover, rel
from pipeline.runbookfacts import (
    RUNBOOK_DIR,
    agent_facts,
    orphan_runbooks,
    runbook_path,
    stale_runbook,
    tool_files,
)
from pipeline.validate import prompts, secretfiles, secrets
from pipeline.validate.agentchecks import AgentChecks
from pipeline.validate.suitechecks import SuiteChecks


@dataclass(slots=True)
class ValidationReport:
    root: Path
    findings: list[Finding]
    files_checked: int
    repo: Repo | None = None  # built when asked for and there are no errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


class _Validator(AgentChecks, SuiteChecks):
    """The whole repository: settings, agents, suites, judges, secrets; builds the typed repo."""

    # -- the repository ----------------------------------------------------------------------
    def run(self) -> None:
        self.check_config()
        for stray in self.layout.stray_agent_dirs:
            if self.selected(stray):
                self.add(
                    Finding(
                        self.rel(stray),
                        None,
                        None,
                        "",
                        "agent folder has no agent.yaml",
                        "error",
                        "ref.no-agent-config",
                        hint="add agent.yaml or remove the folder",
                    )
                )
        for name, files in self.layout.agents.items():
            self.check_agent(name, files)
        for agent, paths in self.layout.suites.items():
            for path in paths:
                if self.selected(path) or (
                    agent in self.layout.agents and self.selected(self.layout.agents[agent].dir)
                ):
                    self.check_suite(agent, path)
        for judge in self.layout.judge_prompts:  # eval reads them: the same checks as the rest
            if self.selected(judge):
                self.read(judge)
        for name, info in self.agents.items():
            self.check_agent_suites(info)
            self.check_template_vars(info)
            self.findings.extend(prompts.check_renders(info.prompts, self.suites.get(name, {})))
        self.check_secrets()
        self.check_runbooks()
        if self.paths is not None:
            self.findings = [
                f for f in self.findings if not f.path or self.selected(self.root / f.path)
            ]

    def check_config(self) -> None:
        doc = self.load(self.layout.config, "knowngood")
        if doc is None:
            return
        self.settings_data = doc.data
        providers = doc.data.get("providers")
        if isinstance(providers, dict):
            self.providers_read = True
            self.providers = {
                n: p.get("model", "") for n, p in providers.items() if isinstance(p, dict)
            }
        ev = doc.data.get("eval")
        if isinstance(ev, dict):
            for key in ("judge_provider", "embedding_provider"):
                name = ev.get(key)
                if isinstance(name, str) and name not in self.providers:
                    self.add(self.unknown_provider(doc, ("eval", key), name))

    def check_runbooks(self) -> None:
        """A committed runbook generated from another configuration is stale (a warning)."""
        if not (self.root / RUNBOOK_DIR).is_dir() or not isinstance(self.settings_data, dict):
            return
        for name, info in self.agents.items():
            if info.doc is None or not info.ok or not (self.root / runbook_path(name)).is_file():
                continue
            facts = agent_facts(
                self.settings_data,
                info.doc.data,
                info.overlays,
                tool_files(info.files.dir, info.doc.data),
            )
            finding = stale_runbook(self.root, name, facts)
            if finding is not None:
                self.add(finding)

    # -- secrets ----------------------------------------------------------------------------
    def check_secrets(self) -> None:
        """knowngood's files (read as validate reads them), then every other file in scope."""
        for path in self.layout.text_files():
            if not self.selected(path):
                continue
            text = self.texts.get(path)
            if text is None:
                text, _ = read_text(path, self.rel(path))
            if text is not None:
                self.findings.extend(secrets.scan_text(self.rel(path), text))
        for path in self.other_files:
            if not self.selected(path):
                continue
            text, problem = secretfiles.read(path, self.rel(path))
            if problem is not None:
                self.findings.append(problem)
            if text is not None:
                self.findings.extend(secrets.scan_text(self.rel(path), text))

    # -- typed repository ----------------------------------------------------------------------
    def build(self) -> Repo:
        assert self.settings_data is not None
        settings = Settings.from_data(self.settings_data)
        agents = {}
        overlays: dict[str, dict[str, Mapping[str, Any]]] = {}
        for name, info in self.agents.items():
            if info.doc is None:
                continue
            agents[name] = build_agent(self.root, info.files.dir, info.doc.data)
            overlays[name] = {}
            for env_path in info.files.environments:
                doc, _ = load(env_path, self.rel(env_path))
                if doc is not None and isinstance(doc.data, dict):
                    overlays[name][env_path.stem] = doc.data
        suites = {
            agent: {name: suite for name, (_, suite) in by_name.items() if suite is not None}
            for agent, by_name in self.suites.items()
        }
        judges = {p.stem: p.read_text(encoding="utf-8") for p in self.layout.judge_prompts}
        return Repo(self.root, settings, agents, overlays, suites, judges)


def _dedupe(findings: list[Finding]) -> Iterator[Finding]:
    seen: set[tuple[object, ...]] = set()
    for f in findings:
        key = (f.path, f.line, f.column, f.json_path, f.message, f.provider)
        if key not in seen:
            seen.add(key)
            yield f


PARALLEL_MIN_AGENTS = 40  # below this, starting processes costs more than it saves


def _order(f: Finding) -> tuple[bool, str, int]:
    """knowngood.yaml first (every other file depends on it: its errors explain theirs), then
    by file and line."""
    return (f.path != CONFIG_FILE, f.path, f.line or 0)


def _validate_part(args: tuple[Path, Layout, bool, list[Path]]) -> tuple[list[Finding], int]:
    root, layout, first, others = args
    v = _Validator(root, layout, None)
    v.other_files = others
    v.run()
    if not first:  # knowngood.yaml is checked by every part (for its providers), reported by one
        config = v.rel(layout.config)
        v.findings = [f for f in v.findings if f.path != config]
        v.files_checked -= 1
    return v.findings, v.files_checked


def _warm_up() -> None:
    from pipeline.templates import environment

    environment()
    for name in schemas.FAST_SCHEMAS:
        schemas.fast_validator(name)


def _workers(layout: Layout, paths: Sequence[Path] | None, build: bool) -> int:
    if paths or build or len(layout.agents) < PARALLEL_MIN_AGENTS:
        return 1
    return min(
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        8,
    )


def validate_repo(
    root: Path, paths: Sequence[Path] | None = None, *, build: bool = False
) -> ValidationReport:
    """Check the repository at ``root`` (or only ``paths`` in it); optionally build the typed repo.

    Large repositories are checked in parallel, one process per core, each taking whole agents
    with their suites (agents do not refer to each other).
    """
    layout = discover(root)
    cache_dir = _cache_dir(root, layout)
    # Files under the eval cache are reported as cache.tracked (an error, whatever they hold):
    # their hashes would only add secret.generic noise that keeps the gate from evaluating.
    cache_root = Path(os.path.normpath(root / cache_dir))
    others = [
        f
        for f in secretfiles.other_files(root, (layout.config.name, "agents", "evals"))
        if not Path(os.path.normpath(f)).is_relative_to(cache_root)
    ]
    workers = _workers(layout, paths, build)
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        _warm_up()  # import and compile once here; forked workers share it

        parts = [
            (root, part, i == 0, others if i == 0 else [])
            for i, part in enumerate(layout.split(workers))
        ]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_validate_part, parts))
        found = [f for findings, _ in results for f in findings]
        findings = list(_dedupe(found))
        findings += _tracked_cache(root, cache_dir)
        findings += orphan_runbooks(root, layout.agents)
        findings.sort(key=_order)
        return ValidationReport(root, findings, sum(n for _, n in results))
    v = _Validator(root, layout, paths)
    v.other_files = others
    v.run()
    findings = list(_dedupe(v.findings))
    findings.sort(key=_order)
    report = ValidationReport(root, findings, v.files_checked)
    if build and not report.errors:
        report.repo = v.build()
    if paths is None:
        # After the build: committed cache files are an error of the checkout, not of the
        # agents. The cache never reads them, so the repository can still be evaluated truly.
        report.findings += _tracked_cache(root, cache_dir)
        report.findings += orphan_runbooks(root, layout.agents)
        report.findings.sort(key=_order)
    return report


def _cache_dir(root: Path, layout: Layout) -> str:
    """``eval.cache_dir`` as knowngood.yaml sets it (its default when unreadable)."""
    from pipeline.validate.cachefiles import cache_dir_setting

    doc, _ = load(layout.config, rel(root, layout.config))
    return cache_dir_setting(doc.data if doc is not None and isinstance(doc.data, dict) else None)


def _tracked_cache(root: Path, cache_dir: str) -> list[Finding]:
    from pipeline.validate.cachefiles import tracked_cache_findings

    return tracked_cache_findings(root, cache_dir)
