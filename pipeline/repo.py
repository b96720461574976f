"""The agent repository: find its files, and build typed objects from validated data.

Discovery (``Layout``, in :mod:`pipeline.layout`) only lists paths. ``validate`` parses and
checks them. ``load_repo`` runs validation and, when it is clean, returns typed ``Repo``/``Agent``/``Suite`` objects for
the commands that act on agents (eval, gate, release, deploy).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import redaction
from pipeline.errors import UsageError

# Discovery moved to pipeline.layout; its names stay importable from here.
from pipeline.layout import CONFIG_FILE as CONFIG_FILE
from pipeline.layout import DATA_SUFFIXES as DATA_SUFFIXES
from pipeline.layout import DEFAULT_ENVIRONMENTS as DEFAULT_ENVIRONMENTS
from pipeline.layout import JUDGE_DIR as JUDGE_DIR
from pipeline.layout import AgentFiles as AgentFiles
from pipeline.layout import Layout as Layout
from pipeline.layout import discover as discover
from pipeline.layout import find_root as find_root
from pipeline.layout import rel as rel

if TYPE_CHECKING:
    from pipeline.findings import Finding
    from pipeline.loading import Document

# ---------------------------------------------------------------------------------------------
# Typed objects, built from data that already passed validation.


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    concurrency: int | None = None
    serve: str | None = None  # knowngood starts a local server for this model (e.g. "smollm2")

    @classmethod
    def from_data(cls, name: str, p: Mapping[str, Any]) -> Provider:
        """From its entry under ``providers:`` (valid against the schema)."""
        return cls(
            name=name,
            model=p["model"],
            api_base=p.get("api_base"),
            api_key_env=p.get("api_key_env"),
            params=dict(p.get("params") or {}),
            timeout_s=p.get("timeout_s"),
            concurrency=p.get("concurrency"),
            serve=p.get("serve"),
        )


@dataclass(frozen=True, slots=True)
class EvalDefaults:
    concurrency: int = 4
    timeout_s: float = 60.0
    retries: int = 4
    repeat: int = 1
    pass_rate: float = 1.0
    cache_dir: str = ".knowngood/cache"
    budget_usd: float | None = None
    judge_provider: str | None = None
    embedding_provider: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    providers: Mapping[str, Provider]
    eval: EvalDefaults
    main_branch: str
    records_branch: str
    environments: tuple[str, ...]
    raw: Mapping[str, Any]

    @property
    def deploy(self) -> Mapping[str, Any]:
        return self.raw.get("deploy") or {}

    @property
    def revert(self) -> Mapping[str, Any]:
        return self.raw.get("revert") or {}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Settings:
        providers = {
            name: Provider.from_data(name, p) for name, p in (data.get("providers") or {}).items()
        }
        redaction.declare(*secret_variables(data))
        ev = data.get("eval") or {}
        known = EvalDefaults.__dataclass_fields__
        defaults = EvalDefaults(**{k: v for k, v in ev.items() if k in known})
        deploy = data.get("deploy") or {}
        return cls(
            providers=providers,
            eval=defaults,
            main_branch=data.get("main_branch", "main"),
            records_branch=(data.get("records") or {}).get("branch", "knowngood/records"),
            environments=tuple(deploy.get("environments") or DEFAULT_ENVIRONMENTS),
            raw=data,
        )


def secret_variables(data: Mapping[str, Any]) -> list[str]:
    """The environment variables knowngood.yaml names as holding secrets: providers' keys, the
    http deploy target's signing secret, the notification webhook URL, serve's API keys."""
    names = [
        p["api_key_env"]
        for p in (data.get("providers") or {}).values()
        if isinstance(p, Mapping) and isinstance(p.get("api_key_env"), str)
    ]
    target = (data.get("deploy") or {}).get("target") or {}
    webhook = (data.get("revert") or {}).get("notify_webhook_env")
    runtime = data.get("runtime") or {}
    serve_keys = runtime.get("api_key_env") if isinstance(runtime, Mapping) else None
    for name in (
        target.get("secret_env") if isinstance(target, Mapping) else None,
        webhook,
        serve_keys,
    ):
        if isinstance(name, str):
            names.append(name)
    return names


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: Mapping[str, Any]
    path: str  # repo-relative
    strict: bool = False
    endpoint: Mapping[str, Any] | None = None  # where the runtime calls it (never sent to models)
    response_schema: Mapping[str, Any] | None = None

    def runtime_format(self) -> dict[str, Any] | None:
        """The bundle's ``tool_endpoints`` entry: None for a tool without an endpoint."""
        if self.endpoint is None:
            return None
        entry: dict[str, Any] = {"name": self.name, "endpoint": copy.deepcopy(dict(self.endpoint))}
        if self.response_schema is not None:
            entry["response_schema"] = copy.deepcopy(dict(self.response_schema))
        return entry

    def openai_format(self) -> dict[str, Any]:
        function: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": copy.deepcopy(dict(self.parameters)),
        }
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    dir: Path
    raw: Mapping[str, Any]  # agent.yaml with the environment overlay (if any) merged in
    prompt_path: str  # relative to the agent folder
    prompt_source: str
    tools: tuple[Tool, ...]
    environment: str | None = None

    @property
    def description(self) -> str:
        return str(self.raw.get("description", ""))

    @property
    def chain(self) -> list[str]:
        model = self.raw["model"]
        return [model["provider"], *(model.get("fallbacks") or [])]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.raw["model"].get("params") or {})

    @property
    def vars(self) -> dict[str, Any]:
        return dict((self.raw.get("prompt") or {}).get("vars") or {})

    @property
    def evals(self) -> Mapping[str, Any]:
        return self.raw.get("evals") or {}

    @property
    def pass_rate(self) -> float:
        return float(self.evals.get("pass_rate", 1.0))

    def render_prompt(self, extra_vars: Mapping[str, Any] | None = None) -> str:
        from pipeline.templates import render

        return render(self.prompt_source, {**self.vars, **(extra_vars or {})})


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    input: str | list[dict[str, Any]]
    expect: tuple[Mapping[str, Any], ...]
    vars: Mapping[str, Any] = field(default_factory=dict)
    providers: tuple[str, ...] | None = None
    repeat: int | None = None
    pass_rate: float | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    agent: str
    path: str  # repo-relative
    cases: tuple[Case, ...]
    providers: tuple[str, ...] | None = None
    repeat: int | None = None
    pass_rate: float | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @classmethod
    def from_data(cls, name: str, path: str, data: Mapping[str, Any]) -> Suite:
        cases = tuple(
            Case(
                id=str(c["id"]),
                input=c["input"],
                expect=tuple(c.get("expect") or ()),
                vars=dict(c.get("vars") or {}),
                providers=tuple(c["providers"]) if c.get("providers") else None,
                repeat=c.get("repeat"),
                pass_rate=c.get("pass_rate"),
                description=c.get("description", ""),
            )
            for c in data.get("cases") or ()
        )
        return cls(
            name=name,
            agent=data["agent"],
            path=path,
            cases=cases,
            providers=tuple(data["providers"]) if data.get("providers") else None,
            repeat=data.get("repeat"),
            pass_rate=data.get("pass_rate"),
            vars=dict(data.get("vars") or {}),
            description=data.get("description", ""),
        )


def load_settings(root: Path) -> Settings:
    """knowngood.yaml of ``root``, checked against its schema (ConfigError otherwise)."""
    from pipeline.loading import load

    return settings_from(*load(root / CONFIG_FILE, CONFIG_FILE))


def settings_from(
    doc: Document | None, findings: list[Finding], label: str = CONFIG_FILE
) -> Settings:
    """Settings from a parsed knowngood.yaml (``label`` names it in the error)."""
    from pipeline.errors import ConfigError
    from pipeline.schemas import check

    if doc is not None:
        findings = [*findings, *check(doc, "knowngood")]
    errors = [f for f in findings if f.severity == "error"]
    if doc is None or errors:
        shown = "\n".join(f"  {f.render()}" for f in errors[:10])
        raise ConfigError(f"{label} is invalid:\n{shown}", hint="run `knowngood validate`")
    return Settings.from_data(doc.data)


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; lists and scalars in ``overlay`` replace."""
    out = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(slots=True)
class Repo:
    """A validated repository."""

    root: Path
    settings: Settings
    agents: dict[str, Agent]
    overlays: dict[str, dict[str, Mapping[str, Any]]]  # agent -> env -> overlay data
    suites: dict[str, dict[str, Suite]]  # agent -> suite name -> suite
    judge_prompts: dict[str, str]  # version -> text

    def agent(self, name: str, env: str | None = None) -> Agent:
        try:
            base = self.agents[name]
        except KeyError:
            known = ", ".join(sorted(self.agents)) or "none"
            raise UsageError(f"no agent named {name!r} (agents: {known})") from None
        if env is None:
            return base
        overlay = self.overlays.get(name, {}).get(env)
        if overlay is None:
            return Agent(
                base.name, base.dir, base.raw, base.prompt_path, base.prompt_source, base.tools, env
            )
        merged = deep_merge(base.raw, overlay)
        return build_agent(self.root, base.dir, merged, env)

    def suites_for(self, agent: str, kind: str | None = None) -> list[Suite]:
        """Suites of ``agent``; ``kind`` is "pull_request" or "post_deploy" (None: all)."""
        suites = self.suites.get(agent, {})
        if kind is None:
            return list(suites.values())
        evals = self.agents[agent].evals
        post = list(evals.get("post_deploy") or [])
        if kind == "post_deploy":
            return [suites[s] for s in post if s in suites]
        named = evals.get("pull_request")
        if named is None:
            return [s for n, s in suites.items() if n not in post]
        return [suites[s] for s in named if s in suites]


def build_agent(
    root: Path, agent_dir: Path, data: Mapping[str, Any], env: str | None = None
) -> Agent:
    from pipeline.loading import load

    prompt_rel = data["prompt"]["system"]
    source = (agent_dir / prompt_rel).read_text(encoding="utf-8")
    tool_paths = data.get("tools")
    if tool_paths is None:
        tools_dir = agent_dir / "tools"
        tool_paths = (
            [rel(agent_dir, p) for p in sorted(tools_dir.iterdir()) if p.suffix in DATA_SUFFIXES]
            if tools_dir.is_dir()
            else []
        )
    tools: list[Tool] = []
    for tool_rel in tool_paths:
        path = agent_dir / tool_rel
        doc, _ = load(path, rel(root, path))
        if doc is None:  # validation reports it; a repo that loads has none of these
            continue
        t = doc.data
        tools.append(
            Tool(
                name=t["name"],
                description=t.get("description", ""),
                parameters=t.get("parameters") or {"type": "object", "properties": {}},
                path=rel(root, path),
                strict=bool(t.get("strict", False)),
                endpoint=t["endpoint"] if isinstance(t.get("endpoint"), Mapping) else None,
                response_schema=(
                    t["response_schema"] if isinstance(t.get("response_schema"), Mapping) else None
                ),
            )
        )
    return Agent(data["name"], agent_dir, data, prompt_rel, source, tuple(tools), env)
