"""The validator's state and the helpers every check uses: reading, loading, paths, providers."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import schemas
from pipeline.findings import Finding
from pipeline.loading import Document, load, read_text
from pipeline.repo import AgentFiles, Layout, Suite, rel
from pipeline.validate import prompts


@dataclass(slots=True)
class AgentInfo:
    """What the checks learnt about one agent, for the suites and the build that follow."""

    files: AgentFiles
    doc: Document | None
    chain: list[tuple[str, str]] = field(default_factory=list)
    tool_names: set[str] = field(default_factory=set)
    vars: set[str] = field(default_factory=set)
    template_vars: dict[str, int] = field(default_factory=dict)  # name -> line in the prompt
    prompt_rel: str | None = None
    prompts: list[prompts.Prompt] = field(default_factory=list)  # rendered with each case's vars
    overlays: dict[str, Any] = field(default_factory=dict)  # environment -> overlay data
    ok: bool = True  # no errors: safe to build a typed Agent


class ValidatorBase:
    """What the checks share: the files read so far, the findings, the providers and agents."""

    def __init__(self, root: Path, layout: Layout, paths: Sequence[Path] | None) -> None:
        self.root = root
        self.layout = layout
        self.paths = [p.resolve() for p in paths] if paths else None
        self.findings: list[Finding] = []
        self.texts: dict[Path, str] = {}
        self.files_checked = 0
        self.providers: dict[str, str] = {}  # name -> litellm model
        self.providers_read = False  # knowngood.yaml parsed and its `providers` is a mapping
        self.settings_data: dict[str, Any] | None = None
        self.agents: dict[str, AgentInfo] = {}
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
        state = resolve_inside(base, candidate)
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

    def unknown_provider(self, doc: Document, parts: tuple[str | int, ...], name: str) -> Finding:
        if not self.providers_read:  # the cause is in knowngood.yaml, reported (first) there
            message = (
                f"provider {name!r} cannot be looked up: knowngood.yaml has no readable `providers`"
            )
            hint = "fix the errors in knowngood.yaml first: agents pick providers from it by name"
        elif not self.providers:
            message = f"provider {name!r} is not defined: knowngood.yaml defines no providers"
            hint = (
                f"add it under `providers:` in knowngood.yaml: {name}: {{model: <litellm model>}}"
            )
        else:
            known = ", ".join(sorted(self.providers))
            message = f"provider {name!r} is not defined in knowngood.yaml (providers: {known})"
            hint = f"add it under `providers:` in knowngood.yaml or use one of: {known}"
        return doc.finding(parts, message, rule="ref.unknown-provider", hint=hint)

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


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def resolve_inside(base: Path, candidate: str) -> str:
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
