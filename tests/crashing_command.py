"""A command that fails the way a bug does, for the error-boundary tests (tests/test_exit_codes.py).

The tests register it in ``pipeline.cli.COMMANDS``: the boundary in ``pipeline.cli.main`` is
what is under test, not this command.
"""

from __future__ import annotations

import click


@click.command("boom")
@click.option("--interrupt", is_flag=True, help="Behave like Ctrl-C in the middle of the command.")
@click.argument("words", nargs=-1)
def command(interrupt: bool, words: tuple[str, ...]) -> int:
    """Raise an exception no code expects, with the arguments in its message."""
    if interrupt:
        raise KeyboardInterrupt
    raise RuntimeError("unexpected state: " + " ".join(words))
