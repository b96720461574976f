"""The checks of the eval suites and their cross-references to the agents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.findings import Finding
from pipeline.loading import Document
from pipeline.repo import Suite
from pipeline.validate import expectations
from pipeline.validate.checker import AgentInfo, ValidatorBase, mapping


class SuiteChecks(ValidatorBase):
    """evals/<agent>/*.yaml: cases, providers, assertions, and the variables the prompts need."""

    def check_agent_suites(self, info: AgentInfo) -> None:
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
        self, doc: Document, parts: tuple[str | int, ...], assertion: Any, info: AgentInfo | None
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

    def check_template_vars(self, info: AgentInfo) -> None:
        missing = {v: line for v, line in info.template_vars.items() if v not in info.vars}
        if not missing or info.prompt_rel is None:
            return
        cases: list[tuple[Document, int, set[str]]] = []
        for doc, _ in self.suites.get(info.files.name, {}).values():
            suite_vars = mapping(doc.data.get("vars"))
            for i, case in enumerate(doc.data.get("cases") or []):
                if isinstance(case, dict):
                    cases.append((doc, i, set(suite_vars) | set(mapping(case.get("vars")))))
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
