"""Where the agent repository's files are: discovery lists paths by role and reads no file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UsageError

CONFIG_FILE = "knowngood.yaml"
DATA_SUFFIXES = (".yaml", ".yml", ".json")
JUDGE_DIR = "_judge"
DEFAULT_ENVIRONMENTS = ("staging", "production")


def find_root(start: Path | None = None) -> Path:
    """The knowngood repository enclosing ``start``: the nearest folder with knowngood.yaml."""
    here = (start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise UsageError(
        f"not a knowngood repository: no {CONFIG_FILE} in {here} or any parent",
        hint="run `knowngood init` to create one, or pass --repo PATH",
    )


def rel(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` as a POSIX string (string work: this runs per file)."""
    base, full = str(root), str(path)
    if full.startswith(base) and full[len(base) : len(base) + 1] == os.sep:
        return full[len(base) + 1 :].replace(os.sep, "/")
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


@dataclass(slots=True)
class AgentFiles:
    name: str  # the folder name
    dir: Path
    config: Path
    environments: list[Path] = field(default_factory=list)


@dataclass(slots=True)
class Layout:
    """Which files the repository holds, by role. No file is read here."""

    root: Path
    config: Path
    agents: dict[str, AgentFiles] = field(default_factory=dict)
    stray_agent_dirs: list[Path] = field(default_factory=list)  # agents/<x>/ without agent.yaml
    suites: dict[str, list[Path]] = field(default_factory=dict)  # evals/<agent>/<suite>.yaml
    judge_prompts: list[Path] = field(default_factory=list)
    # A part of the repository (parallel validation): only these folders are scanned for secrets.
    scan_only: list[Path] | None = None

    def text_files(self) -> list[Path]:
        """Every file a secret could hide in: agents/, evals/ and knowngood.yaml (no symlinks)."""
        if self.scan_only is None:
            files, tops = [self.config], [self.root / "agents", self.root / "evals"]
        else:
            files, tops = [], self.scan_only
        for top in tops:
            if top.is_file():
                files.append(top)
            for dirpath, dirnames, filenames in os.walk(top):
                dirnames.sort()
                files.extend(Path(dirpath, name) for name in sorted(filenames))
        return [f for f in files if not f.is_symlink()]

    def split(self, n: int) -> list[Layout]:
        """``n`` parts that can be validated independently (each agent with its own suites)."""
        names = sorted(self.agents)
        parts = []
        for i in range(n):
            mine = names[i::n]
            part = Layout(
                self.root,
                self.config,
                {a: self.agents[a] for a in mine},
                suites={a: self.suites[a] for a in mine if a in self.suites},
            )
            part.scan_only = [self.agents[a].dir for a in mine] + [
                self.root / "evals" / a for a in mine if a in self.suites
            ]
            if i == 0:  # everything that belongs to no agent
                part.stray_agent_dirs = list(self.stray_agent_dirs)
                part.judge_prompts = list(self.judge_prompts)
                orphans = {a: p for a, p in self.suites.items() if a not in self.agents}
                part.suites.update(orphans)
                owned = {p for layout_dir in part.scan_only for p in [layout_dir]}
                extra = [
                    self.config,
                    *self.stray_agent_dirs,
                    *(self.root / "evals" / a for a in orphans),
                ]
                extra += [p for p in _loose_files(self.root) if p not in owned]
                if self.judge_prompts:
                    extra.append(self.root / "evals" / JUDGE_DIR)
                part.scan_only += extra
            parts.append(part)
        return parts


def _loose_files(root: Path) -> list[Path]:
    """Files directly in agents/ or evals/ (a README, say): scanned for secrets too."""
    return [
        Path(e.path) for top in ("agents", "evals") for e in _entries(root / top) if e.is_file()
    ]


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """Directory entries sorted by name (scandir: one syscall, cached file types)."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def discover(root: Path) -> Layout:
    layout = Layout(root=root, config=root / CONFIG_FILE)
    for entry in _entries(root / "agents"):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        folder = Path(entry.path)
        names = {e.name: e for e in _entries(folder)}
        config = next((folder / f"agent{s}" for s in DATA_SUFFIXES if f"agent{s}" in names), None)
        if config is None:
            layout.stray_agent_dirs.append(folder)
            continue
        files = AgentFiles(name=entry.name, dir=folder, config=config)
        if "environments" in names and names["environments"].is_dir():
            files.environments = [
                Path(e.path)
                for e in _entries(folder / "environments")
                if e.name.endswith(DATA_SUFFIXES)
            ]
        layout.agents[entry.name] = files
    for entry in _entries(root / "evals"):
        if not entry.is_dir():
            continue
        if entry.name == JUDGE_DIR:
            layout.judge_prompts = [
                Path(e.path) for e in _entries(Path(entry.path)) if e.name.endswith(".md")
            ]
            continue
        suites = [
            Path(e.path)
            for e in _entries(Path(entry.path))
            if e.name.endswith(DATA_SUFFIXES) and e.is_file()
        ]
        if suites:
            layout.suites[entry.name] = suites
    return layout
