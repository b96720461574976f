"""The checks of one agent folder: agent.yaml, its prompt, its tools, its environment overlays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.loading import Document, load
from pipeline.repo import DATA_SUFFIXES, AgentFiles
from pipeline.validate import prompts, toolcompat
from pipeline.validate.checker import AgentInfo, ValidatorBase


class AgentChecks(ValidatorBase):
    """agent.yaml and what it points to."""

    def check_agent(self, name: str, files: AgentFiles) -> None:
        doc = self.load(files.config, "agent") if self.selected(files.dir) else None
        if doc is None and self.selected(files.dir):
            self.agents[name] = AgentInfo(files, None, ok=False)
            return
        if doc is None:  # not selected: still parse it quietly for the suites' cross-references
            parsed, _ = load(files.config, self.rel(files.config))
            if parsed is None or not isinstance(parsed.data, dict):
                return
            doc = parsed
        data = doc.data
        info = AgentInfo(files, doc)
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

    def check_prompt(self, info: AgentInfo, path: Path, overlay: Any = None) -> None:
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

    def check_tools(self, info: AgentInfo, doc: Document, listed: Any) -> None:
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
            if "response_schema" in tool and "endpoint" not in tool:
                self.add(
                    tool_doc.finding(
                        ("response_schema",),
                        "response_schema needs an endpoint: only the runtime's calls to the "
                        "endpoint check responses",
                        rule="tool.response-schema",
                        hint="add endpoint: {url, method, read_only}, or drop response_schema",
                    )
                )
            if isinstance(tool.get("response_schema"), dict):
                self.findings.extend(
                    toolcompat.check_parameters_schema(
                        tool_doc, ("response_schema",), "tool.response-schema"
                    )
                )
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

    def check_overlay(self, info: AgentInfo, path: Path) -> None:
        doc = self.load(path, "environment")
        if doc is None:
            return
        info.overlays[path.stem] = doc.data
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
