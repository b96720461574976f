"""The ``knowngood`` command line: a lazy click group and the one error boundary.

Commands live one per module in this package and are imported only when run, so
``knowngood --help`` stays fast and never imports litellm.
"""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import NoReturn

import click

from pipeline import redaction
from pipeline.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_USAGE, KnowngoodError
from pipeline.words import plural

# name -> (module, one-line help). The help text lives here so listing commands imports nothing.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": (
        "pipeline.cli.init",
        "Scaffold a knowngood repository with an example agent, suite, schemas and workflows.",
    ),
    "validate": (
        "pipeline.cli.validate",
        "Check every file, schema, cross-reference, tool schema and secret.",
    ),
    "diff": (
        "pipeline.cli.diff",
        "What changed per agent between two commits, and the semver bump each needs.",
    ),
    "eval": (
        "pipeline.cli.eval",
        "Run eval suites on every provider in each agent's chain (cached, concurrent).",
    ),
    "results": (
        "pipeline.cli.results",
        "Work with results files: merge the shards of a CI matrix.",
    ),
    "cache": ("pipeline.cli.cache", "Inspect or prune the eval response cache."),
    "gate": (
        "pipeline.cli.gate",
        "The pull-request check: validate, eval affected agents, compare every case with BASE.",
    ),
    "revert": (
        "pipeline.cli.revert",
        "Revert a merge on the main branch, with the auto-revert safeguards.",
    ),
    "release": (
        "pipeline.cli.release",
        "Tag each agent changed since its last release: <agent>/vX.Y.Z with a manifest.",
    ),
    "status": (
        "pipeline.cli.status",
        "Per agent: releases, what each environment runs, last check, known good, incidents.",
    ),
    "history": (
        "pipeline.cli.history",
        "An agent's deployments, checks, reverts, incidents, drills and releases, newest first.",
    ),
    "deploy": (
        "pipeline.cli.deploy",
        "Publish a release to an environment; --check runs post-deploy suites, --auto-revert recovers.",
    ),
    "check": (
        "pipeline.cli.check",
        "Run an agent's post-deploy suites against what is deployed now.",
    ),
    "rollback": (
        "pipeline.cli.rollback",
        "Redeploy the previous known good release, without touching main.",
    ),
    "report": (
        "pipeline.cli.report",
        "Write a static HTML report: releases, pass rates, incidents, MTTR, drills, breakers.",
    ),
    "drill": (
        "pipeline.cli.drill",
        "Disaster recovery drills (rollback, failover, crash, restore, rebuild), each recorded.",
    ),
    "incident": (
        "pipeline.cli.incident",
        "Incidents with severity P1-P4 and a timeline: open, ack, mitigate, resolve, list, show.",
    ),
    "runbook": (
        "pipeline.cli.runbook",
        "Write Markdown runbooks per agent from the configuration and the measured drill figures.",
    ),
    "readiness": (
        "pipeline.cli.readiness",
        "Score the repository against the disaster-recovery checklist; exit 1 below the policy.",
    ),
    "backup": (
        "pipeline.cli.backup",
        "Back up the runtime's state store now: a checked snapshot and the change journal.",
    ),
    "backups": (
        "pipeline.cli.backups",
        "List the backups of the state store and what they can restore.",
    ),
    "restore": (
        "pipeline.cli.restore",
        "Bring the state store back to a point in time, verified in scratch, then swapped in.",
    ),
    "serve": (
        "pipeline.cli.serve",
        "Serve the deployed agents over HTTP (OpenAI format), failing over between providers.",
    ),
    "run": (
        "pipeline.cli.run",
        "One answer from an agent as deployed, through the same failover as serve.",
    ),
    "workflows": (
        "pipeline.cli.workflows",
        "List, show, resume, cancel or prune the durable workflows of the state store.",
    ),
    "sessions": (
        "pipeline.cli.sessions",
        "List, show, delete or prune the conversations (sessions) of the state store.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_) for name, (_, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, value: _version(ctx) if value else None,
    help="Show the version and exit.",
)
def cli() -> None:
    """knowngood keeps AI agents at their last known good configuration.

    Agents' prompts, tool schemas and configs live in git; knowngood validates them, runs their
    eval suites across providers, gates pull requests, releases, deploys, checks, and reverts to
    the last known good release when a deploy goes wrong.

    Exit codes: 0 all good, 1 the check found a problem, 2 usage error, 3 could not complete
    (or a bug: one line names the log file with the traceback), 130 interrupted.
    """


def _version(ctx: click.Context) -> None:
    """``--version``: the installed metadata is read only here (it takes 30-60 ms)."""
    import pipeline

    click.echo(f"knowngood, version {pipeline.__version__}")
    ctx.exit()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (the one place exceptions become exit codes).

    Everything it prints goes through the redactor (:mod:`pipeline.redaction`); when a secret
    had to be redacted, one warning line says whose value it was.
    """
    before = redaction.redactions()
    with redaction.redacting_stdio():
        code = _run(argv)
        after = redaction.redactions()
        for name in sorted(after):
            if (n := after[name] - before.get(name, 0)) > 0:
                click.echo(
                    f"knowngood: warning: the value of {name} turned up in output "
                    f"{plural(n, 'time')} and was written as [REDACTED:{name}] (did a "
                    "provider echo it? then rotate it)",
                    err=True,
                )
    return code


def run() -> NoReturn:
    """The ``knowngood`` console script and ``python -m pipeline``: :func:`main`, then exit.

    After a run that imported litellm (millions of objects), the interpreter's own shutdown
    would spend ~0.15 s freeing them one by one. The process then runs its exit handlers,
    flushes its output and ends there; otherwise (or while a non-daemon thread still runs,
    which the interpreter would wait for) it exits as usual.
    """
    code = main()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    here = threading.current_thread()
    waiting = any(t is not here and t.is_alive() and not t.daemon for t in threading.enumerate())
    if "litellm" not in sys.modules or run_exit_handlers is None or waiting:
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # the reader went away, or the stream is closed
            pass
    os._exit(code)


def _run(argv: Sequence[str] | None) -> int:
    try:
        result = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="knowngood",
            standalone_mode=False,
        )
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.exceptions.Abort:  # click's word for Ctrl-C (or SIGTERM, where it is one)
        click.echo("knowngood: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        return EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
    except KnowngoodError as e:
        click.echo(f"knowngood: error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("knowngood: interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        sys.stderr.close()  # reader went away (e.g. `| head`); nothing more to say
        return EXIT_INCOMPLETE
    except Exception as e:  # a bug: one line naming the log that holds the traceback
        from pipeline.cli.crash import report_crash

        click.echo(report_crash(e, list(argv) if argv is not None else sys.argv[1:]), err=True)
        return EXIT_INCOMPLETE
    return int(result or 0)
