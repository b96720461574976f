"""The package's layers hold: no import in ``pipeline/`` runs back up a layer.

The layers, top to bottom, are listed in :data:`LAYERS`. A module may import from its own layer
and from any layer below it, never from one above: the core never reaches up into the command
line or the reporters, so each layer can be read, tested and reused without the ones above it.
Every import counts, at module level and inside functions alike (a lazy import is still a
dependency). The unit is the first level under ``pipeline``: a top-level module
(``pipeline/repo.py``) or a subpackage (``pipeline/evals/``) with everything inside it.

A new module or subpackage must be given a layer here before its first test run: the test
fails on any unit it does not know, so a newcomer decides where the code belongs.

The tests hold a rule of their own: a test module never imports another ``test_*`` module.
Helpers two test files share live in support modules (tests/repoutil.py, tests/gitutil.py,
tests/fakeproviders.py ...), so running or editing one test file never depends on another.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pipeline"
TESTS = ROOT / "tests"

# Top to bottom. Each entry: (layer name, units in it). A unit is ``pipeline`` itself (its
# ``__init__``: the version), a top-level module or a subpackage.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("cli", frozenset({"pipeline.cli", "pipeline.__main__"})),
    ("report", frozenset({"pipeline.report"})),
    (
        # One core package per command (or group of commands); runtime serves the released agent.
        "commands",
        frozenset(
            {
                "pipeline.deploy",
                "pipeline.eval_command",
                "pipeline.gate",
                "pipeline.history",
                "pipeline.release",
                "pipeline.status",
                "pipeline.scaffold",
                "pipeline.runtime",
                "pipeline.site",
                "pipeline.runbook",
                "pipeline.readiness",
            }
        ),
    ),
    (
        "evals/revert",
        frozenset({"pipeline.evals", "pipeline.revert", "pipeline.running", "pipeline.incidents"}),
    ),
    # What a deploy is made of: the bundle of a release, the targets it goes to, notifications.
    ("bundle/targets", frozenset({"pipeline.bundle", "pipeline.targets", "pipeline.notify"})),
    (
        "validate/changes/records",
        frozenset(
            {
                "pipeline.validate",
                "pipeline.changes",
                "pipeline.records",
                "pipeline.recordbuild",
                "pipeline.recordscheck",
                "pipeline.recordtypes",
                "pipeline.source",
                "pipeline.runbookfacts",
            }
        ),
    ),
    ("repo", frozenset({"pipeline.repo", "pipeline.layout"})),
    (
        "loading/git/github",
        frozenset(
            {
                "pipeline.loading",
                "pipeline.parsecache",
                "pipeline.schemas",
                "pipeline.userschemas",
                "pipeline.templates",
                "pipeline.jinjatemplates",
                "pipeline.git",
                "pipeline.gitbranch",
                "pipeline.gittracked",
                "pipeline.github",
            }
        ),
    ),
    # Leaf helpers everything may use: secret redaction, who holds what (a process's name), safe
    # YAML, the sandbox's limits, the files a command writes for the user (whole, redacted).
    (
        "redaction/yamlsafe/sandbox",
        frozenset(
            {
                "pipeline.redaction",
                "pipeline.owners",
                "pipeline.yamlsafe",
                "pipeline.yamlhints",
                "pipeline.sandbox",
                "pipeline.templatelimits",
                "pipeline.pruning",
                "pipeline.outputs",
            }
        ),
    ),
    (
        "errors/findings",
        frozenset(
            {
                "pipeline",
                "pipeline.errors",
                "pipeline.findings",
                "pipeline.outcome",  # the request -> outcome shape every command shares
                "pipeline._compiled_schemas",
                "pipeline.words",  # wording helpers every message may use (plural)
            }
        ),
    ),
)

# Upward imports known and accepted for now: (importing module, imported module) -> why.
# An entry is debt with a reason and a way out, never a way to silence a new finding.
ALLOWED_UPWARD: dict[tuple[str, str], str] = {}


@dataclass(frozen=True)
class Import:
    """One import statement's target, as written in one module."""

    module: str  # the importing module, e.g. pipeline.evals.session
    target: str  # the imported module, e.g. pipeline.report.evals
    line: int

    @property
    def path(self) -> str:
        parts = self.module.split(".")
        candidate = ROOT.joinpath(*parts).with_suffix(".py")
        if not candidate.exists():
            candidate = ROOT.joinpath(*parts, "__init__.py")
        return candidate.relative_to(ROOT).as_posix()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Whether ``name`` (dotted, under the repository root) is a module or a package."""
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(path: Path) -> Iterator[Import]:
    """Every import in ``path``, wherever it stands (module level, function, ``if``, ``try``)."""
    text = path.read_text(encoding="utf-8")
    yield from imports_in(text, module_name(path), is_package=path.name == "__init__.py")


def imports_in(text: str, module: str, *, is_package: bool = False) -> Iterator[Import]:
    """Every import in the source ``text`` of ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(text, module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                # ``from pipeline import sandbox`` imports the module pipeline.sandbox.
                sub = f"{source}.{alias.name}"
                yield Import(module, sub if is_module(sub) else source, node.lineno)


def unit(name: str) -> str:
    return ".".join(name.split(".")[:2])


def layer_of(name: str) -> int | None:
    for index, (_, units) in enumerate(LAYERS):
        if unit(name) in units:
            return index
    return None


@functools.cache
def package_imports() -> tuple[Import, ...]:
    """Each import of a ``pipeline`` module inside ``pipeline/``, once per statement and target."""
    found: dict[Import, None] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for imp in imports(path):
            if imp.target == "pipeline" or imp.target.startswith("pipeline."):
                found[imp] = None
    return tuple(found)


def upward_imports() -> list[Import]:
    """Imports whose target sits in a layer above the importing module's."""
    upward = []
    for imp in package_imports():
        here, there = layer_of(imp.module), layer_of(imp.target)
        if here is not None and there is not None and there < here:
            upward.append(imp)
    return upward


def test_every_unit_has_a_layer() -> None:
    units = {unit(module_name(path)) for path in PACKAGE.rglob("*.py")}
    missing = sorted(u for u in units if layer_of(u) is None)
    assert not missing, (
        f"no layer for {', '.join(missing)}: add each to LAYERS in tests/test_layers.py, in the "
        "lowest layer that holds everything it imports and above everything that imports it"
    )


def test_layers_do_not_overlap() -> None:
    seen: dict[str, str] = {}
    for name, units in LAYERS:
        for u in units:
            assert u not in seen, f"{u} is in two layers: {seen[u]} and {name}"
            seen[u] = name


def test_no_import_runs_up_a_layer() -> None:
    found = [imp for imp in upward_imports() if (imp.module, imp.target) not in ALLOWED_UPWARD]
    messages = [
        f"{imp.path}:{imp.line}: {imp.module} (layer {LAYERS[layer_of(imp.module) or 0][0]}) "
        f"imports {imp.target} (layer {LAYERS[layer_of(imp.target) or 0][0]}, above it): "
        "pass a value or a callback down instead"
        for imp in found
    ]
    assert not messages, "imports that run back up a layer:\n" + "\n".join(messages)


def test_allow_list_has_no_stale_entries() -> None:
    live = {(imp.module, imp.target) for imp in upward_imports()}
    stale = sorted(set(ALLOWED_UPWARD) - live)
    assert not stale, f"remove these from ALLOWED_UPWARD, they no longer occur: {stale}"


def test_no_cycle_between_units() -> None:
    """Within a layer units may import each other, but never round in a circle (the allow-listed
    upward imports aside, which are known debt)."""
    graph: dict[str, set[str]] = {}
    for imp in package_imports():
        here, there = unit(imp.module), unit(imp.target)
        if here != there and (imp.module, imp.target) not in ALLOWED_UPWARD:
            graph.setdefault(here, set()).add(there)
    path: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            cycle = visit(nxt)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        assert cycle is None, "units import each other in a circle: " + " -> ".join(cycle)


def test_the_walk_sees_imports_inside_functions() -> None:
    # The one lazy import this test was written for: a core module drawing progress itself.
    source = (
        "def f():\n"
        "    from pipeline.report.evals import line\n"
        "    import pipeline.cli\n"
        "    from ..report import evals\n"
    )
    found = [(imp.target, imp.line) for imp in imports_in(source, "pipeline.evals.session")]
    assert found == [
        ("pipeline.report.evals", 2),
        ("pipeline.cli", 3),
        ("pipeline.report.evals", 4),
    ]
    assert layer_of("pipeline.report.evals") == 1
    assert layer_of("pipeline.evals.session") == 3


def test_core_never_imports_report() -> None:
    report = layer_of("pipeline.report")
    assert report is not None
    below = [imp for imp in package_imports() if (layer_of(imp.module) or 0) > report]
    bad = [
        f"{imp.path}:{imp.line}: {imp.target}"
        for imp in below
        if unit(imp.target) == "pipeline.report"
    ]
    assert not bad, "core modules import pipeline.report:\n" + "\n".join(bad)


def imports_of_test_modules(text: str) -> Iterator[tuple[int, str]]:
    """(line, module) for each import in ``text`` that names a ``test_*`` module."""
    for node in ast.walk(ast.parse(text)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
            if node.level or node.module in (None, "tests"):  # ``from . import test_x``
                names += [alias.name for alias in node.names]
        for name in names:
            if any(part.startswith("test_") for part in name.split(".")):
                yield node.lineno, name


def test_the_test_import_check_sees_every_form() -> None:
    text = (
        "from test_release import edit\n"
        "import test_gate\n"
        "from . import test_deploy\n"
        "def f():\n"
        "    from tests.test_eval import x\n"
        "from repoutil import make_repo\n"
    )
    assert [line for line, _ in imports_of_test_modules(text)] == [1, 2, 3, 5]


def test_test_modules_do_not_import_each_other() -> None:
    bad = [
        f"tests/{path.name}:{line}: imports {name}"
        for path in sorted(TESTS.glob("*.py"))
        for line, name in imports_of_test_modules(path.read_text(encoding="utf-8"))
    ]
    assert not bad, (
        "a test module imports another test module; move the shared helpers into a support "
        "module in tests/ (like tests/gitutil.py or tests/repoutil.py):\n" + "\n".join(bad)
    )


# -- the command line only parses, calls, renders and returns -------------------------------------

# What a command-line module must not reach for: git, files, HTTP. Its core function does that.
CLI_FORBIDDEN = (
    "pipeline.git",
    "pipeline.gitbranch",
    "pipeline.github",
    "pipeline.source",
    "pipeline.records",
    "pipeline.loading",
    "pipeline.outputs",
    "subprocess",
    "urllib",
    "http",
    "shutil",
    "tempfile",
)
CLI_FILE_CALLS = frozenset({"open", "read_text", "write_text", "read_bytes", "write_bytes"})

# Command-line modules still holding work of their own: module -> why, and the way out.
CLI_NOT_THIN_YET: dict[str, str] = {
    "pipeline.cli.crash": "the error boundary's crash log: written where the boundary is",
    "pipeline.cli.options": "say_read(source) types its argument with pipeline.source (TYPE_CHECKING only)",
}


def cli_problems(text: str, module: str) -> list[str]:
    """What in the source of a command-line module runs git, touches files or speaks HTTP."""
    found = [
        f"line {imp.line}: imports {imp.target}"
        for imp in imports_in(text, module)
        if any(imp.target == f or imp.target.startswith(f + ".") for f in CLI_FORBIDDEN)
    ]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in CLI_FILE_CALLS:
                found.append(f"line {node.lineno}: calls {name}()")
    return found


def test_the_cli_check_sees_git_files_and_http() -> None:
    text = (
        "def command():\n"
        "    from pipeline.git import Git\n"
        "    import urllib.request\n"
        "    Path('x').write_text('y')\n"
        "    from pipeline.report.gate import comment\n"
    )
    found = cli_problems(text, "pipeline.cli.x")
    assert found == [
        "line 2: imports pipeline.git",
        "line 3: imports urllib.request",
        "line 4: calls write_text()",
    ]


def test_cli_modules_only_parse_call_render_and_return() -> None:
    bad = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        module = module_name(path)
        if module in CLI_NOT_THIN_YET:
            continue
        text = path.read_text(encoding="utf-8")
        bad += [f"{path.relative_to(ROOT)}: {p}" for p in cli_problems(text, module)]
    assert not bad, (
        "a command-line module does work of its own; move it into the command's core function "
        "(run(root, request) -> outcome) or a reporter:\n" + "\n".join(bad)
    )


def test_the_cli_exceptions_are_not_stale() -> None:
    for module, why in CLI_NOT_THIN_YET.items():
        path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
        assert cli_problems(path.read_text(encoding="utf-8"), module), (
            f"{module} is thin now ({why}): remove it from CLI_NOT_THIN_YET"
        )
