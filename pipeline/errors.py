"""One exception hierarchy. The core raises these; only ``pipeline.cli`` turns them into exit codes."""

from __future__ import annotations

# Exit codes (DESIGN.md): the user-facing contract.
EXIT_OK = 0
EXIT_FINDINGS = 1  # the check found a problem: invalid config, failing/regressed case, failed check
EXIT_USAGE = 2  # bad option, not a knowngood repository
EXIT_INCOMPLETE = 3  # could not complete: providers unreachable, budget exhausted, remote rejected
EXIT_INTERRUPTED = 130


class KnowngoodError(Exception):
    """An expected failure: printed as one clear message, never as a traceback."""

    exit_code = EXIT_INCOMPLETE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled whole, whatever a subclass's ``__init__`` takes: durable workflows keep the
        error a step raised in the state store and raise it again on replay."""
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(
    cls: type[KnowngoodError], args: tuple[object, ...], state: dict[str, object]
) -> KnowngoodError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class UsageError(KnowngoodError):
    """Bad option or not a knowngood repository (exit 2)."""

    exit_code = EXIT_USAGE


class ConfigError(KnowngoodError):
    """The repository's files are invalid (exit 1)."""

    exit_code = EXIT_FINDINGS


class CheckFailed(KnowngoodError):
    """A check ran and found a problem (exit 1)."""

    exit_code = EXIT_FINDINGS


class EvalError(KnowngoodError):
    """An eval run could not complete (exit 3)."""

    exit_code = EXIT_INCOMPLETE


class ProviderError(EvalError):
    """A provider kept failing after retries (exit 3)."""


class BudgetExceeded(EvalError):
    """The --budget cap was reached (exit 3)."""


class CacheMiss(EvalError):
    """--offline and a case has no cached answer (exit 3)."""


class GitError(KnowngoodError):
    """A git command failed. Carries the command, its exit code and stderr (exit 3)."""

    def __init__(
        self,
        message: str,
        *,
        cmd: list[str] | None = None,
        code: int | None = None,
        stderr: str = "",
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.cmd = cmd or []
        self.code = code
        self.stderr = stderr


class DeployError(KnowngoodError):
    """A bundle could not be published to the deploy target (exit 3)."""
