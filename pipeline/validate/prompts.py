"""Prompt templates in ``validate``: each is parsed (syntax, and what a prompt may not do), then
rendered with the variables of every eval case, in the same bounded sandbox eval renders in, so
a template that fails or goes past a limit is reported on its line before any eval runs.

Trial renders are bounded too: at most ``TRIAL_WORK`` units of work per prompt over all its
variable sets (a template that expensive is still rendered, and bounded, by eval).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.findings import Finding
from pipeline.loading import Document
from pipeline.repo import deep_merge
from pipeline.templatelimits import MAX_WORK

TRIAL_WORK = 2 * MAX_WORK


@dataclass(slots=True)
class Prompt:
    """One prompt file of an agent (its own, or an environment overlay's)."""

    rel: str
    text: str
    vars: Mapping[str, Any]  # the agent's prompt.vars (merged with the overlay's)
    required: frozenset[str]  # variables the template uses unguarded


def keep(
    kept: list[Prompt],
    rel: str,
    text: str,
    used: Mapping[str, int],
    agent: Any,
    overlay: Any = None,
    *,
    new: bool,
) -> None:
    """Keep a prompt with the variables eval renders it with: the agent's ``prompt.vars``,
    under an overlay's when an overlay names the prompt (a prompt seen before needs keeping
    again only when the overlay changes its variables)."""
    own = _prompt_vars(overlay)
    if new or own:
        kept.append(Prompt(rel, text, deep_merge(_prompt_vars(agent), own), frozenset(used)))


def _prompt_vars(data: Any) -> dict[str, Any]:
    return _mapping(_mapping(data.get("prompt") if isinstance(data, dict) else None).get("vars"))


def check_source(rel: str, text: str) -> tuple[dict[str, int] | None, list[Finding]]:
    """The variables ``text`` requires (name -> first line), or None and the finding that says
    why it does not parse or does what a prompt may not (include, import, extends)."""
    from pipeline.templates import ONE_FILE_HINT, plain, variables_used

    if plain(text) is not None:
        return {}, []  # no template syntax: nothing to parse (and no Jinja2 to import)
    from jinja2 import TemplateSyntaxError

    try:
        return variables_used(text), []
    except TemplateSyntaxError as e:
        message = e.message or "syntax error"
        if "not allowed in a prompt" in message:
            rule, hint = "template.not-allowed", ONE_FILE_HINT
        else:
            message = f"template syntax error: {message}"
            rule, hint = (
                "template.syntax",
                "prompts are Jinja2 templates: check {{ }} and {% %} pairs",
            )
        return None, [Finding(rel, e.lineno, None, "", message, "error", rule, hint=hint)]


def check_renders(
    prompts: list[Prompt], suites: Mapping[str, tuple[Document, Any]]
) -> list[Finding]:
    """Render each prompt with the variables of every case that provides all it requires
    (a case that does not is reported by the undefined-variable check); one finding per prompt,
    the first failure."""
    findings: list[Finding] = []
    for prompt in prompts:
        finding = _first_failure(prompt, suites)
        if finding is not None:
            findings.append(finding)
    return findings


def _first_failure(prompt: Prompt, suites: Mapping[str, tuple[Document, Any]]) -> Finding | None:
    from pipeline.templates import TemplateProblem, render_metered

    seen: set[str] = set()
    work = 0
    for where, variables in _variable_sets(prompt, suites):
        key = repr(variables)
        if key in seen or not prompt.required <= variables.keys():
            continue
        seen.add(key)
        try:
            work += render_metered(prompt.text, variables)[1]
        except TemplateProblem as e:
            said = f" (with the variables of {where})" if where else ""
            hint = e.hint or "the template fails when eval renders it: fix it on this line"
            return Finding(
                prompt.rel,
                e.line,
                None,
                "",
                f"{e.reason}{said}",
                "error",
                "template.render",
                hint=hint,
            )
        if work > TRIAL_WORK:
            break
    return None


def _variable_sets(
    prompt: Prompt, suites: Mapping[str, tuple[Document, Any]]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(which case, the variables eval renders the prompt with): the agent's, the suite's over
    them, the case's over those; the agent's alone when there is no case."""
    any_case = False
    for doc, _ in suites.values():
        suite_vars = _mapping(doc.data.get("vars"))
        cases = doc.data.get("cases")
        for case in cases if isinstance(cases, list) else ():
            if isinstance(case, dict):
                any_case = True
                label = f"{doc.rel} case {case.get('id')!r}"
                yield label, {**prompt.vars, **suite_vars, **_mapping(case.get("vars"))}
    if not any_case:
        yield "", dict(prompt.vars)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
