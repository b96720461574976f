"""``knowngood validate``: every file, every schema, every cross-reference. Returns findings."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import schemas
from pipeline.findings import Finding
from pipeline.loading import Document, load, read_text
from pipeline.repo import (
    DATA_SUFFIXES,
    AgentFiles,
    Layout,
    Repo,
    Settings,
    Suite,
    build_agent,
    discover,
    rel,
)
from pipeline.validate import expectations, prompts, secretfiles, secrets, toolcompat


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


@dataclass(slots=True)
class _AgentInfo:
    files: AgentFiles
    doc: Document | None
    chain: list[tuple[str, str]] = field(default_factory=list)
    tool_names: set[str] = field(default_factory=set)
    vars: set[str] = field(default_factory=set)
    template_vars: dict[str, int] = field(default_factory=dict)  # name -> line in the prompt
    prompt_rel: str | None = None
    prompts: list[prompts.Prompt] = field(default_factory=list)  # rendered with each case's vars
    ok: bool = True  # no errors: safe to build a typed Agent


class _Validator:
    def __init__(self, root: Path, layout: Layout, paths: Sequence[Path] | None) -> None:
        self.root = root
        self.layout = layout
        self.paths = [p.resolve() for p in paths] if paths else None
        self.findings: list[Finding] = []
        self.texts: dict[Path, str] = {}
        self.files_checked = 0
        self.providers: dict[str, str] = {}  # name -> litellm model
        self.settings_data: dict[str, Any] | None = None
        self.agents: dict[str, _AgentInfo] = {}
        self.suites: dict[str, dict[str, tuple[Document, Suite | None]]] = {}
        # Files outside knowngood's own that are scanned for secrets (every tracked one).
        self.other_files: list[Path] = []

    # -- helpers ---------------------------------------------------------------------------
    def selected(self, path: Path) -> bool:
        if self.paths is None:
            return True
        p = path.resolve()
        return any(p == s or s in p.parents or p in s.parents for s in self.paths)

    def rel(self, path: Path) -> str:
        return rel(self.root, path)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def read(self, path: Path) -> str | None:
        """A text file (prompt, grading prompt) after the hostile-input checks, or None."""
        self.files_checked += 1
        text, problem = read_text(path, self.rel(path))
        if problem is not None:
            self.add(problem)
        elif text is not None:
            self.texts[path] = text
        return text

    def load(self, path: Path, schema: str) -> Document | None:
        """Parse and schema-check one file; None when it does not parse."""
        self.files_checked += 1
        doc, problems = load(path, self.rel(path))
        self.findings.extend(problems)
        if doc is None:
            return None
        self.texts[path] = doc.text
        if not isinstance(doc.data, dict):
            self.add(
                doc.finding(
                    (), f"expected a mapping at the top of the file, got {type(doc.data).__name__}"
                )
            )
            return None
        self.findings.extend(schemas.check(doc, schema))
        return doc

    def inside(
        self, base: Path, candidate: str, doc: Document, parts: tuple[str | int, ...], what: str
    ) -> Path | None:
        """``base/candidate`` if it exists and resolves inside ``base`` (no ``..``, no symlink escape)."""
        path = base / candidate
        state = _resolve_inside(base, candidate)
        if state == "outside":
            self.add(
                doc.finding(
                    parts,
                    f"{what} {candidate!r} resolves outside the agent folder",
                    rule="ref.outside",
                    hint="keep every file of an agent inside agents/<agent>/",
                )
            )
            return None
        if state == "missing":
            self.add(
                doc.finding(
                    parts,
                    f"{what} {candidate!r} does not exist",
                    rule=f"ref.missing-{what.split()[0]}",
                    hint=f"create {self.rel(path)} or fix the path",
                )
            )
            return None
        return path

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
            self.providers = {
                n: p.get("model", "") for n, p in providers.items() if isinstance(p, dict)
            }
        ev = doc.data.get("eval")
        if isinstance(ev, dict):
            for key in ("judge_provider", "embedding_provider"):
                name = ev.get(key)
                if isinstance(name, str) and name not in self.providers:
                    self.add(self.unknown_provider(doc, ("eval", key), name))

    def unknown_provider(self, doc: Document, parts: tuple[str | int, ...], name: str) -> Finding:
        known = ", ".join(sorted(self.providers)) or "none"
        return doc.finding(
            parts,
            f"provider {name!r} is not defined in knowngood.yaml (providers: {known})",
            rule="ref.unknown-provider",
            hint=f"add it under `providers:` in knowngood.yaml or use one of: {known}",
        )

    def check_chain(self, doc: Document, model: Any) -> list[tuple[str, str]]:
        chain: list[tuple[str, str]] = []
        if not isinstance(model, dict):
            return chain
        names: list[tuple[tuple[str | int, ...], Any]] = [
            (("model", "provider"), model.get("provider"))
        ]
        fallbacks = model.get("fallbacks")
        if isinstance(fallbacks, list):
            names += [(("model", "fallbacks", i), n) for i, n in enumerate(fallbacks)]
        seen: set[str] = set()
        for parts, name in names:
            if not isinstance(name, str):
                continue
            if name not in self.providers:
                self.add(self.unknown_provider(doc, parts, name))
            elif name in seen:
                self.add(
                    doc.finding(
                        parts,
                        f"provider {name!r} appears twice in the model chain",
                        severity="warning",
                        rule="ref.duplicate-provider",
                    )
                )
            else:
                chain.append((name, self.providers[name]))
            seen.add(name)
        return chain

    def check_agent(self, name: str, files: AgentFiles) -> None:
        doc = self.load(files.config, "agent") if self.selected(files.dir) else None
        if doc is None and self.selected(files.dir):
            self.agents[name] = _AgentInfo(files, None, ok=False)
            return
        if doc is None:  # not selected: still parse it quietly for the suites' cross-references
            parsed, _ = load(files.config, self.rel(files.config))
            if parsed is None or not isinstance(parsed.data, dict):
                return
            doc = parsed
        data = doc.data
        info = _AgentInfo(files, doc)
        self.agents[name] = info
        before = len(self.findings)
        if data.get("name") != name:
            self.add(
                doc.finding(
                    ("name",),
                    f"agent name {data.get('name')!r} does not match its folder {name!r}",
                    rule="ref.agent-name",
                    hint=f"set `name: {name}` or rename the folder",
                )
            )
        info.chain = self.check_chain(doc, data.get("model"))
        prompt = data.get("prompt")
        if isinstance(prompt, dict):
            v = prompt.get("vars")
            if isinstance(v, dict):
                info.vars = set(v)
            system = prompt.get("system")
            if isinstance(system, str):
                path = self.inside(files.dir, system, doc, ("prompt", "system"), "prompt file")
                if path is not None:
                    self.check_prompt(info, path)
        self.check_tools(info, doc, data.get("tools"))
        for env_path in files.environments:
            self.check_overlay(info, env_path)
        info.ok = not any(f.severity == "error" for f in self.findings[before:])

    def check_prompt(self, info: _AgentInfo, path: Path, overlay: Any = None) -> None:
        """Parse the prompt at ``path`` once; keep it to render with each case's variables."""
        relpath = self.rel(path)
        known = next((p for p in info.prompts if p.rel == relpath), None)
        if known is None:
            text = self.read(path)
            used, problems = prompts.check_source(relpath, text) if text else (None, [])
            self.findings.extend(problems)
            if text is None or used is None:
                return
            if overlay is None:
                info.prompt_rel, info.template_vars = relpath, used
        else:
            text, used = known.text, dict.fromkeys(known.required, 1)
        agent = info.doc.data if info.doc else None
        prompts.keep(info.prompts, relpath, text, used, agent, overlay, new=known is None)

    def check_tools(self, info: _AgentInfo, doc: Document, listed: Any) -> None:
        files = info.files
        entries: list[tuple[str, tuple[str | int, ...]]] = []
        if isinstance(listed, list):
            entries = [(p, ("tools", i)) for i, p in enumerate(listed) if isinstance(p, str)]
        elif listed is None and (files.dir / "tools").is_dir():
            entries = [
                (f"tools/{name}", ("tools",))
                for name in sorted(os.listdir(files.dir / "tools"))
                if name.endswith(DATA_SUFFIXES)
            ]
        tools: list[dict[str, Any]] = []
        first_seen: dict[str, str] = {}
        for tool_rel, parts in entries:
            path = self.inside(files.dir, tool_rel, doc, parts, "tool file")
            if path is None:
                continue
            tool_doc = self.load(path, "tool")
            if tool_doc is None:
                continue
            tool = tool_doc.data
            if isinstance(tool.get("parameters"), dict):
                self.findings.extend(toolcompat.check_parameters_schema(tool_doc, ("parameters",)))
            tool_name = tool.get("name")
            if isinstance(tool_name, str):
                if tool_name in first_seen:
                    self.add(
                        tool_doc.finding(
                            ("name",),
                            f"tool name {tool_name!r} is already used by {first_seen[tool_name]}",
                            rule="ref.duplicate-tool",
                            hint="tool names must be unique per agent",
                        )
                    )
                first_seen.setdefault(tool_name, tool_doc.rel)
                info.tool_names.add(tool_name)
            self.findings.extend(toolcompat.check_tool(tool_doc, tool, info.chain))
            tools.append(tool)
        self.findings.extend(toolcompat.check_tool_set(doc.rel, doc, tools, info.chain))

    def check_overlay(self, info: _AgentInfo, path: Path) -> None:
        doc = self.load(path, "environment")
        if doc is None:
            return
        envs = (
            (self.settings_data or {}).get("deploy", {})
            if isinstance(self.settings_data, dict)
            else {}
        )
        known_envs = envs.get("environments") if isinstance(envs, dict) else None
        known = list(known_envs) if isinstance(known_envs, list) else ["staging", "production"]
        if path.stem not in known:
            self.add(
                doc.finding(
                    (),
                    f"environment {path.stem!r} is not one of the deploy environments ({', '.join(known)})",
                    severity="warning",
                    rule="ref.unknown-environment",
                    hint="list it under deploy.environments in knowngood.yaml or rename the file",
                )
            )
        self.check_chain(doc, doc.data.get("model"))
        prompt = doc.data.get("prompt")
        if isinstance(prompt, dict) and isinstance(prompt.get("system"), str):
            where = ("prompt", "system")
            found = self.inside(info.files.dir, prompt["system"], doc, where, "prompt file")
            if found is not None:
                self.check_prompt(info, found, doc.data)
        elif isinstance(prompt, dict) and info.prompts:  # new vars for the agent's own prompt
            self.check_prompt(info, self.root / info.prompts[0].rel, doc.data)
        tools = doc.data.get("tools")
        if isinstance(tools, list):
            for i, t in enumerate(tools):
                if isinstance(t, str):
                    self.inside(info.files.dir, t, doc, ("tools", i), "tool file")

    def check_agent_suites(self, info: _AgentInfo) -> None:
        doc = info.doc
        if doc is None or not self.selected(info.files.dir):
            return
        evals = doc.data.get("evals")
        if not isinstance(evals, dict):
            return
        suites = self.suites.get(info.files.name, {})
        for kind in ("pull_request", "post_deploy"):
            names = evals.get(kind)
            if not isinstance(names, list):
                continue
            for i, suite in enumerate(names):
                if isinstance(suite, str) and suite not in suites:
                    have = ", ".join(sorted(suites)) or "none"
                    self.add(
                        doc.finding(
                            ("evals", kind, i),
                            f"suite {suite!r} does not exist (evals/{info.files.name}/ has: {have})",
                            rule="ref.missing-suite",
                            hint=f"create evals/{info.files.name}/{suite}.yaml or fix the name",
                        )
                    )

    # -- suites -------------------------------------------------------------------------------
    def check_suite(self, folder: str, path: Path) -> None:
        before = len(self.findings)
        doc = self.load(path, "suite")
        if doc is None:
            return
        data = doc.data
        agent_name = data.get("agent")
        info = self.agents.get(folder)
        if agent_name != folder:
            self.add(
                doc.finding(
                    ("agent",),
                    f"suite names agent {agent_name!r} but lives in evals/{folder}/",
                    rule="ref.suite-agent",
                    hint=f"set `agent: {folder}` or move the file",
                )
            )
        if info is None:
            self.add(
                doc.finding(
                    ("agent",),
                    f"no agent {folder!r}: evals/{folder}/ has no agents/{folder}/agent.yaml",
                    rule="ref.unknown-agent",
                )
            )
        chain = [n for n, _ in info.chain] if info else []
        self.check_provider_list(doc, ("providers",), data.get("providers"), chain)
        cases = data.get("cases")
        ids: dict[str, int] = {}
        if isinstance(cases, list):
            for i, case in enumerate(cases):
                if not isinstance(case, dict):
                    continue
                cid = case.get("id")
                if isinstance(cid, str):
                    if cid in ids:
                        self.add(
                            doc.finding(
                                ("cases", i, "id"),
                                f"case id {cid!r} is already used by case #{ids[cid] + 1}",
                                rule="ref.duplicate-case",
                                hint="case ids must be unique in a suite",
                            )
                        )
                    ids.setdefault(cid, i)
                self.check_provider_list(
                    doc, ("cases", i, "providers"), case.get("providers"), chain
                )
                expect = case.get("expect")
                if isinstance(expect, list):
                    for j, assertion in enumerate(expect):
                        self.check_assertion(doc, ("cases", i, "expect", j), assertion, info)
        suite = None
        if not any(f.severity == "error" for f in self.findings[before:]):
            suite = Suite.from_data(path.stem, doc.rel, data)
        self.suites.setdefault(folder, {})[path.stem] = (doc, suite)

    def check_provider_list(
        self, doc: Document, parts: tuple[str | int, ...], names: Any, chain: list[str]
    ) -> None:
        if not isinstance(names, list):
            return
        for i, name in enumerate(names):
            if not isinstance(name, str):
                continue
            if name not in self.providers:
                self.add(self.unknown_provider(doc, (*parts, i), name))
            elif chain and name not in chain:
                self.add(
                    doc.finding(
                        (*parts, i),
                        f"provider {name!r} is not in the agent's model chain ({', '.join(chain)})",
                        rule="ref.provider-not-in-chain",
                        hint="add it to model.fallbacks in agent.yaml or remove it here",
                    )
                )

    def check_assertion(
        self, doc: Document, parts: tuple[str | int, ...], assertion: Any, info: _AgentInfo | None
    ) -> None:
        if not isinstance(assertion, dict) or len(assertion) != 1:
            return  # the schema reports it
        ((kind, arg),) = assertion.items()
        at = (*parts, kind)
        if kind == "not":
            self.check_assertion(doc, at, arg, info)
        elif kind == "regex" and isinstance(arg, str):
            self.findings.extend(expectations.regex(doc, at, arg))
        elif kind == "json_schema" and isinstance(arg, dict):
            self.findings.extend(expectations.json_schema(doc, at))
        elif kind == "tool_call":
            self.findings.extend(expectations.tool_call_schemas(doc, at, arg))
            if info is not None and info.doc is not None:
                names = info.files.name, info.tool_names
                self.findings.extend(expectations.tool_names(doc, at, arg, *names))
        elif kind == "judge" and isinstance(arg, dict):
            provider = arg.get("provider") or (self.settings_data or {}).get("eval", {}).get(
                "judge_provider"
            )
            if isinstance(provider, str) and provider not in self.providers:
                self.add(self.unknown_provider(doc, (*at, "provider"), provider))
            elif provider is None:
                self.add(
                    doc.finding(
                        at,
                        "judge needs a provider",
                        rule="assertion.judge-provider",
                        hint="set `provider:` here or eval.judge_provider in knowngood.yaml",
                    )
                )
            version = arg.get("prompt", "v1")
            if (
                isinstance(version, str)
                and not (self.root / "evals" / "_judge" / f"{version}.md").is_file()
            ):
                self.add(
                    doc.finding(
                        (*at, "prompt") if "prompt" in arg else at,
                        f"grading prompt evals/_judge/{version}.md does not exist",
                        rule="assertion.judge-prompt",
                        hint="knowngood init writes evals/_judge/v1.md",
                    )
                )

    def check_template_vars(self, info: _AgentInfo) -> None:
        missing = {v: line for v, line in info.template_vars.items() if v not in info.vars}
        if not missing or info.prompt_rel is None:
            return
        cases: list[tuple[Document, int, set[str]]] = []
        for doc, _ in self.suites.get(info.files.name, {}).values():
            suite_vars = _mapping(doc.data.get("vars"))
            for i, case in enumerate(doc.data.get("cases") or []):
                if isinstance(case, dict):
                    cases.append((doc, i, set(suite_vars) | set(_mapping(case.get("vars")))))
        if not cases:
            for var, line in missing.items():
                self.add(
                    Finding(
                        info.prompt_rel,
                        line,
                        None,
                        "",
                        f"template variable {var!r} is never provided",
                        "error",
                        "template.undefined-var",
                        hint="set it in agent.yaml prompt.vars, or in the vars of every eval case",
                    )
                )
            return
        for doc, i, provided in cases:
            absent = [v for v in missing if v not in provided]
            if absent:
                names = ", ".join(repr(v) for v in absent)
                self.add(
                    doc.finding(
                        ("cases", i),
                        f"case does not provide template variable(s) {names} used by {info.prompt_rel}",
                        rule="template.undefined-var",
                        hint="add them to the case's (or suite's) vars, or to agent.yaml prompt.vars",
                    )
                )

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


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _resolve_inside(base: Path, candidate: str) -> str:
    """ "ok", "missing" or "outside" for ``base/candidate``.

    Fast path (one lstat per path component) for plain relative paths without symlinks; any
    ``..``, absolute path or symlink on the way takes the full ``realpath`` check.
    """
    parts = candidate.replace("\\", "/").split("/")
    if candidate.startswith("/") or ".." in parts:
        return _slow_inside(base, candidate)
    current = str(base)
    for part in (p for p in parts if p and p != "."):
        current = os.path.join(current, part)  # noqa: PTH118 - string paths: this runs per file
        try:
            st = os.lstat(current)
        except OSError:
            return "missing"
        if stat.S_ISLNK(st.st_mode):
            return _slow_inside(base, candidate)
    try:
        return "ok" if stat.S_ISREG(os.stat(current).st_mode) else "missing"
    except OSError:
        return "missing"


def _slow_inside(base: Path, candidate: str) -> str:
    try:
        resolved = os.path.realpath(base / candidate)
        root = os.path.realpath(base)
    except (OSError, ValueError):
        return "outside"
    if resolved != root and not resolved.startswith(root + os.sep):
        return "outside"
    return "ok" if os.path.isfile(resolved) else "missing"


def _dedupe(findings: list[Finding]) -> Iterator[Finding]:
    seen: set[tuple[object, ...]] = set()
    for f in findings:
        key = (f.path, f.line, f.column, f.json_path, f.message, f.provider)
        if key not in seen:
            seen.add(key)
            yield f


PARALLEL_MIN_AGENTS = 40  # below this, starting processes costs more than it saves


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
        findings.sort(key=lambda f: (f.path, f.line or 0))
        return ValidationReport(root, findings, sum(n for _, n in results))
    v = _Validator(root, layout, paths)
    v.other_files = others
    v.run()
    findings = list(_dedupe(v.findings))
    findings.sort(key=lambda f: (f.path, f.line or 0))
    report = ValidationReport(root, findings, v.files_checked)
    if build and not report.errors:
        report.repo = v.build()
    if paths is None:
        # After the build: committed cache files are an error of the checkout, not of the
        # agents. The cache never reads them, so the repository can still be evaluated truly.
        report.findings += _tracked_cache(root, cache_dir)
        report.findings.sort(key=lambda f: (f.path, f.line or 0))
    return report


def _cache_dir(root: Path, layout: Layout) -> str:
    """``eval.cache_dir`` as knowngood.yaml sets it (its default when unreadable)."""
    from pipeline.validate.cachefiles import cache_dir_setting

    doc, _ = load(layout.config, rel(root, layout.config))
    return cache_dir_setting(doc.data if doc is not None and isinstance(doc.data, dict) else None)


def _tracked_cache(root: Path, cache_dir: str) -> list[Finding]:
    from pipeline.validate.cachefiles import tracked_cache_findings

    return tracked_cache_findings(root, cache_dir)
