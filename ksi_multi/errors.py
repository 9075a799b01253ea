"""Errors a user can act on: each names the cause and, where one exists, the fix."""

from __future__ import annotations


class KsiError(Exception):
    """A failure with a one-line cause and an optional one-line fix."""

    exit_code = 1

    def __init__(self, cause: str, fix: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return self.cause if not self.fix else f"{self.cause}\n  fix: {self.fix}"


class ConfigError(KsiError):
    """Bad configuration: exit code 2, like a usage error."""

    exit_code = 2


class Stop(BaseException):
    """The agent must stop now: a signal, or an abort from elsewhere. Raised by signal handlers wherever the
    main thread is; not an Exception (as KeyboardInterrupt is not), so that no `except Exception` on the
    way (a best-effort report, a retried read) swallows it and the agent carries on after its stop."""

    exit_code = 1

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = None

    def __str__(self) -> str:
        return self.cause


class Terminated(Stop):
    """The process was asked to stop (SIGTERM/SIGINT: scancel, time limit, Ctrl-C)."""

    exit_code = 143

    def __init__(self, signame: str) -> None:
        super().__init__(f"stopped by {signame}")


class Aborted(Stop):
    """The job was aborted elsewhere: a node failed (its reason follows), or rank 0 stopped."""
