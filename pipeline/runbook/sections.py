"""The six sections of a runbook: the P1 playbook and the seeds' failure scenarios.

Each writer takes the configuration facts and the measured figures and returns one Markdown
section: when it applies, the exact commands for this repository and agent, how to verify,
the expected timeline (measured, or "not measured yet" with the drill to run), whom to call.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.runbook.figures import Figures
from pipeline.runbook.render import (
    SECTIONS,
    chain_text,
    contacts,
    env_facts,
    main_env,
    not_measured,
    resilience_text,
    seconds,
    target_text,
)
from pipeline.runbookfacts import Facts
from pipeline.runtime.settings import is_postgres_url

Writer = Callable[[Facts, Figures], str]


def _section(anchor: str, when: str, steps: list[str], verify: list[str], timeline: str) -> str:
    lines = [f"## {SECTIONS[anchor]}", "", f"**When:** {when}", "", "**Do:**", ""]
    lines += [f"{i}. {step}" for i, step in enumerate(steps, 1)]
    lines += ["", "**Verify:**", ""]
    lines += [f"- {check}" for check in verify]
    lines += ["", f"**Expected timeline:** {timeline}"]
    return "\n".join(lines)


def _cmd(*commands: str) -> str:
    body = "\n".join(commands)
    return f"\n\n   ```sh\n   {body.replace(chr(10), chr(10) + '   ')}\n   ```"


def _escalate(facts: Facts) -> str:
    rto = seconds(facts["targets"]["rto_s"])
    return (
        f"Not recovered within the RTO ({rto}): call the next escalation contact.\n\n"
        + contacts(facts)
    )


def _rollback_timeline(facts: Facts, figures: Figures) -> str:
    drill = figures.drill("rollback")
    if drill is None:
        return not_measured("rollback", facts["agent"]) + "."
    text = (
        f"rollback to the last known good release and its passed check took "
        f"{seconds(drill.recovery_s)} in the rollback drill of {drill.date}"
    )
    if figures.mean_recovery_s is not None:
        text += (
            f"; past incidents recovered in {seconds(figures.mean_recovery_s)} on average "
            f"({figures.incidents_resolved} resolved)"
        )
    return text + "."


def p1_playbook(facts: Facts, figures: Figures) -> str:
    agent, env = facts["agent"], main_env(facts)
    rto = seconds(facts["targets"]["rto_s"])
    scenarios = [a for a in SECTIONS if a != "p1-playbook"]
    steps = [
        "Open the incident so its timeline starts now (it notifies at once and links the "
        "section to follow; the scenario is one of "
        + ", ".join(scenarios)
        + "):"
        + _cmd(
            f'knowngood incident open {agent} --severity P1 --env {env} --what "<what you see>" '
            "--scenario <scenario>"
        ),
        "Acknowledge it (the owner, or the first escalation contact who picks it up) and see "
        "what runs, the last known good release and the breakers:"
        + _cmd("knowngood incident ack <incident-id>", f"knowngood status {agent}"),
        "Mitigate with the section that matches: a provider down → [Model API outage](#model-api-outage); "
        "a bad change → [Prompt change breaks the agent](#prompt-change-breaks-the-agent); "
        "state lost or wrong → [State corruption](#state-corruption); a tool's API changed → "
        "[Tool API breaking change](#tool-api-breaking-change); the machine is gone → "
        "[Full rebuild](#full-rebuild). When unsure, roll back first:"
        + _cmd(
            f"knowngood rollback {agent} --env {env} --check",
            'knowngood incident mitigate <incident-id> --note "<what you did>"',
        ),
        "Resolve it once the check passes; this writes the post-mortem skeleton under "
        "postmortems/ (fill in what worked and what took longer than this runbook says):"
        + _cmd('knowngood incident resolve <incident-id> --note "<what fixed it>"'),
    ]
    verify = [
        f"`knowngood check {agent} --env {env}` exits 0.",
        f"`knowngood status {agent}` shows {env} good and `knowngood incident list {agent} --open` "
        "lists nothing.",
    ]
    timeline = f"serving a known good release again within {rto} (the RTO target); " + (
        _rollback_timeline(facts, figures)
    )
    when = (
        f"the agent is down or wrong for users in {env} (a P1: every user affected, no workaround)."
    )
    return (
        _section("p1-playbook", when, steps, verify, timeline)
        + "\n\n**Escalate:** "
        + _escalate(facts)
    )


def model_api_outage(facts: Facts, figures: Figures) -> str:
    agent, env = facts["agent"], main_env(facts)
    envf = env_facts(facts, env)
    chain = envf["chain"]
    primary = chain[0]["provider"] if chain else "<provider>"
    vendors = sorted({p["vendor"] for p in chain})
    steps = [
        f"Chain in {env}: {chain_text(chain)}. The runtime fails over by itself: "
        + resilience_text(envf["resilience"])
        + ". See which breaker is open, and why (a transition saying `the provider said "
        "429, Retry-After` is a rate limit: it closes by itself once that time is over; raise "
        "the quota with the vendor if it keeps coming back):" + _cmd(f"knowngood status {agent}"),
        f"If {primary} stays down, take it out of rotation for every worker sharing the state "
        f"store `{facts['state_store']}` (its calls then fail at once and the next provider answers):"
        + _cmd(f"knowngood drill fault {primary} --for 3600"),
        "When the vendor reports it fixed, put it back:"
        + _cmd(f"knowngood drill fault {primary} --lift"),
    ]
    if len(vendors) < 2:
        steps.append(
            f"Every provider of this chain is run by {', '.join(vendors) or 'one vendor'}: add a "
            f"fallback from another vendor to agents/{agent}/agent.yaml, then "
            "`knowngood validate` and open a pull request."
        )
    verify = [
        f'`knowngood run {agent} "ping" --env {env} --format json` answers, and names the provider that served.',
        f"`knowngood status {agent}` lists the breaker of {primary} closed once it is back.",
    ]
    drill = figures.drill("failover")
    if drill is None:
        timeline = not_measured("failover", agent) + "."
    else:
        f = drill.figures
        timeline = (
            f"in the failover drill of {drill.date} the first answer from a fallback came "
            f"{seconds(f.get('first_fallback_s', drill.recovery_s))} after the primary failed, its "
            f"breaker opened after {seconds(f.get('breaker_open_s'))}, "
            f"{f.get('failed_requests', 'n/a')} of {f.get('requests', 'n/a')} requests failed, and "
            f"the primary served again {seconds(f.get('primary_back_s'))} after the fault was lifted."
        )
    return _section(
        "model-api-outage",
        "answers are slow, come from a fallback, or fail with 503; a provider rate-limits "
        "(429); a vendor's status page reports an outage.",
        steps,
        verify,
        timeline,
    )


def prompt_change_breaks(facts: Facts, figures: Figures) -> str:
    agent, env = facts["agent"], main_env(facts)
    main = facts["main_branch"]
    steps = [
        "Confirm with the post-deploy suites ("
        + (
            ", ".join(env_facts(facts, env)["post_deploy"])
            or "none configured: add `evals.post_deploy`"
        )
        + "):"
        + _cmd(f"knowngood check {agent} --env {env}"),
        "Roll back to the last known good release (main is not touched):"
        + _cmd(f"knowngood rollback {agent} --env {env} --check"),
        f"Find the merge that changed the agent and revert it on {main}:"
        + _cmd(
            f"git fetch origin {main} && git log --first-parent --merges --oneline origin/{main} -- agents/{agent}",
            f'knowngood revert <merge-sha> --agent {agent} --env {env} --reason "<what broke>"',
        ),
    ]
    verify = [
        f"`knowngood check {agent} --env {env}` exits 0.",
        f"`knowngood history {agent}` shows the rollback and the revert.",
    ]
    return _section(
        "prompt-change-breaks-the-agent",
        f"a deploy of {agent} passed review but answers wrongly (its post-deploy check fails, "
        "users report it, or auto-revert already acted).",
        steps,
        verify,
        _rollback_timeline(facts, figures),
    )


def _postgres(facts: Facts) -> bool:
    return is_postgres_url(str(facts["state_store"]))


def _pg_restore_steps(at: str) -> list[str]:
    """A PostgreSQL store is restored into a new data directory, then swapped in by hand:
    knowngood does not run the database server."""
    return [
        "On the database server's machine (as root or the server's user), restore it into a "
        "new data directory; it is verified by a server no client can reach, left stopped, and starts as the "
        "original server did (archiving its WAL):"
        + _cmd(f"knowngood restore --timestamp {at} --data-dir <new data directory>"),
        "Swap it in: stop the PostgreSQL server (systemctl, pg_ctlcluster or pg_ctl, as it "
        "runs), move its data directory aside, move the new one in its place (same owner, "
        "mode 0700), start the server as it is started, then take a base backup (the restored "
        "server is on a new timeline). Where its postgresql.conf and pg_hba.conf live outside "
        "the data directory (Debian and Ubuntu: /etc/postgresql/<version>/<cluster>/), keep "
        "them there (the backups do not hold them):"
        + _cmd(
            "# stop the PostgreSQL server",
            "mv <data directory> <data directory>.before-restore",
            "mv <new data directory> <data directory>",
            "# start the PostgreSQL server",
            "knowngood backup",
        ),
    ]


def state_corruption(facts: Facts, figures: Figures) -> str:
    agent, env = facts["agent"], main_env(facts)
    backups = target_text(facts["backup_target"])
    steps = [
        "If the store is only unreachable, nothing is lost: serve answers "
        "`503 state_store_unavailable` to sessions and the queue, `/metrics` says "
        "`knowngood_state_store_up 0`, and its log says so once. Requests without a session "
        "are still answered (failover, no breakers). Bring the store back (PostgreSQL: start "
        "its server, check the network and `max_connections`; SQLite: free the disk, make the "
        "file writable, stop whatever holds its lock); serve picks it up within 2 s, and you "
        "stop here. Otherwise, go on.",
        f"Stop the workers that write the state store `{facts['state_store']}` "
        "(every `knowngood serve` of this repository).",
        "Pick the last good point in time from the backups"
        + (
            f" ({backups})"
            if backups
            else " (none configured: set `runtime.backup` in knowngood.yaml)"
        )
        + ":"
        + _cmd("knowngood backups list"),
        *(
            _pg_restore_steps("<YYYY-MM-DDTHH:MM:SSZ>")
            if _postgres(facts)
            else [
                "Restore it; it is verified in a scratch store before it is swapped in:"
                + _cmd("knowngood restore --timestamp <YYYY-MM-DDTHH:MM:SSZ>")
            ]
        ),
        "Restart the workers and resume interrupted workflows:"
        + _cmd(
            f"knowngood serve --env {env}",
            "knowngood workflows list",
            "knowngood workflows resume <workflow-id>",
        ),
    ]
    verify = [
        f'`knowngood run {agent} "ping" --env {env} --session <a known session id>` continues that conversation.',
        "`knowngood workflows list` shows no workflow stuck in a pending state.",
        "Every serve's `/metrics` says `knowngood_state_store_up 1`.",
    ]
    if _postgres(facts):
        verify.append(
            "`knowngood backups list` shows a base backup taken after the swap, and its newest "
            "restorable point moves on (the server archives its WAL)."
        )
    timeline = []
    for kind, what in (("restore", "restore drill"), ("crash", "crash drill")):
        drill = figures.drill(kind)
        if drill is None:
            timeline.append(f"{kind}: {not_measured(kind, agent)}")
        else:
            timeline.append(f"{what} of {drill.date}: recovered in {seconds(drill.recovery_s)}")
    timeline.append(f"target RPO {seconds(facts['targets']['rpo_s'])}")
    return _section(
        "state-corruption",
        "conversations lose their history, workflows fail on their own state, the state store "
        "reports integrity errors, it was deleted, or serve says it is unavailable.",
        steps,
        verify,
        "; ".join(timeline) + ".",
    )


def tool_api_breaking_change(facts: Facts, figures: Figures) -> str:
    agent, env = facts["agent"], main_env(facts)
    tools = ", ".join(f"`agents/{agent}/{t}`" for t in facts["tools"]) or "none"
    steps = [
        f"Tools of {agent}: {tools}. Reproduce with the suites, without the cache:"
        + _cmd(f"knowngood eval {agent} --no-cache"),
        "Roll back if a release changed a tool schema (`knowngood diff` calls that a major bump):"
        + _cmd(
            f"knowngood diff <last-good-tag> {agent}/<current-tag>",
            f"knowngood rollback {agent} --env {env} --to vX.Y.Z --check",
        ),
        "Update the tool file to the API's new shape, check it against every provider of the chain, "
        "and ship it through a pull request:"
        + _cmd("knowngood validate", f"knowngood gate --base origin/{facts['main_branch']}"),
        "Once merged, release and deploy with the check and auto-revert:"
        + _cmd("knowngood release", f"knowngood deploy {agent} --env {env} --check --auto-revert"),
    ]
    verify = [
        f"`knowngood check {agent} --env {env}` exits 0.",
        f"`knowngood eval {agent} --no-cache` passes on every provider of the chain.",
    ]
    return _section(
        "tool-api-breaking-change",
        "a tool's API changed under the agent: tool calls fail or their answers no longer match "
        "the tool's schema.",
        steps,
        verify,
        _rollback_timeline(facts, figures),
    )


def full_rebuild(facts: Facts, figures: Figures) -> str:
    agent, env = facts["agent"], main_env(facts)
    install = (
        "pip install 'knowngood[local]'" if facts["serves_locally"] else "pip install knowngood"
    )
    steps = [
        "On the new machine, clone the repository with its tags and records:"
        + _cmd(
            "git clone <this repository's remote URL> && cd <its folder>",
            f"git fetch --tags origin && git fetch origin {facts['records_branch']}:{facts['records_branch']}",
        ),
        "Install knowngood and set the providers' keys in the environment:" + _cmd(install),
        (
            "If the database server of the state store is intact, there is nothing to restore: "
            "point the new machine at it. If it is lost too, set up a new one (as the first, "
            "same PostgreSQL major version, its server stopped), then restore the latest backup "
            "on it as [State corruption](#state-corruption) says (the new data directory becomes "
            "the server's):"
            + _cmd("knowngood restore --timestamp latest --data-dir <new data directory>")
            if _postgres(facts)
            else "Restore the state store from the latest backup:"
            + _cmd("knowngood backups list", "knowngood restore --timestamp <newest>")
        ),
        f"Redeploy the last known good release to {env} (deploy target "
        f"{target_text(facts['deploy_target'])}) and serve it:"
        + _cmd(
            f"knowngood status {agent}",
            f"knowngood deploy {agent} --env {env} --version vX.Y.Z --check",
            f"knowngood serve --env {env}",
        ),
    ]
    verify = [
        "`curl -fsS http://127.0.0.1:8000/readyz` answers 200.",
        f'`knowngood run {agent} "ping" --env {env}` answers.',
    ]
    drill = figures.drill("rebuild")
    timeline = (
        not_measured("rebuild", agent) + "."
        if drill is None
        else f"the rebuild drill of {drill.date} took {seconds(drill.recovery_s)} from a fresh "
        "directory to one answer per agent."
    )
    return _section(
        "full-rebuild",
        "the machine that ran the agents is lost, or the whole runtime must move to a new one.",
        steps,
        verify,
        timeline,
    )


SECTION_WRITERS: dict[str, Writer] = {
    "p1-playbook": p1_playbook,
    "model-api-outage": model_api_outage,
    "prompt-change-breaks-the-agent": prompt_change_breaks,
    "state-corruption": state_corruption,
    "tool-api-breaking-change": tool_api_breaking_change,
    "full-rebuild": full_rebuild,
}
