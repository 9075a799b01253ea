"""The one place where external commands run: timeouts, logging, secret redaction, error text."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ksi_multi.errors import KsiError

log = logging.getLogger(__name__)

_STDERR_TAIL_LINES = 8


class CommandError(KsiError):
    """An external command failed or timed out."""

    def __init__(self, cause: str, fix: str | None = None, *, returncode: int | None = None,
                 stdout: str = "", stderr: str = "") -> None:
        super().__init__(cause, fix)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


def render(cmd: Sequence[str], secrets: Iterable[str] = ()) -> str:
    return redact(shlex.join(cmd), secrets)


def run(
    cmd: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    input: str | None = None,
    stdin=None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    capture: bool = True,
    secrets: Iterable[str] = (),
    fix: str | None = None,
    preexec_fn=None,
) -> subprocess.CompletedProcess[str]:
    """Run a command and return its result; raise CommandError with a readable cause on failure.

    `secrets` are replaced by <redacted> in every log line and error message.
    `fix` is the hint shown to the user when the command fails. `stdin`: an open file to read from.
    """
    secrets = tuple(secrets)
    shown = render(cmd, secrets)
    full_env = dict(os.environ if env is None else env)
    if extra_env:
        full_env.update(extra_env)
    log.debug("run: %s", shown)
    try:
        proc = subprocess.run(
            list(cmd), input=input, stdin=stdin, env=full_env, cwd=cwd, timeout=timeout, text=True,
            stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE if capture else None,
            preexec_fn=preexec_fn,
        )
    except FileNotFoundError:
        raise CommandError(f"command not found: {cmd[0]}", fix or f"install {cmd[0]} or put it on PATH") from None
    except subprocess.TimeoutExpired:
        raise CommandError(f"`{shown}` did not finish within {timeout:g} s", fix) from None
    if check and proc.returncode != 0:
        tail = "\n".join(redact(proc.stderr or proc.stdout or "", secrets).strip().splitlines()[-_STDERR_TAIL_LINES:])
        detail = f": {tail}" if tail else ""
        raise CommandError(f"`{shown}` failed with exit code {proc.returncode}{detail}", fix,
                           returncode=proc.returncode, stdout=proc.stdout or "", stderr=proc.stderr or "")
    return proc


def output(cmd: Sequence[str], **kwargs) -> str:
    """Run a command and return its stripped standard output."""
    return run(cmd, **kwargs).stdout.strip()


def stop(proc: subprocess.Popen | None, grace: float = 5) -> None:
    """End a helper this process started: SIGTERM, then SIGKILL after `grace` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def log_tail(path: Path, chars: int = 400) -> str:
    """The end of a helper's log, for an error message."""
    try:
        return " ".join(path.read_text(errors="replace").strip().splitlines()[-3:])[-chars:] or "no output"
    except OSError:
        return "no output"


def spawn(cmd: Sequence[str], log_file: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start a long-running process, its output appended to log_file (0600); stop it with `stop`."""
    log.debug("run: %s", shlex.join(cmd))
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        try:
            return subprocess.Popen(list(cmd), stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                    env=None if env is None else dict(env))
        except FileNotFoundError:
            raise CommandError(f"command not found: {cmd[0]}", f"install {cmd[0]} or put it on PATH") from None


def start_helper(cmd: Sequence[str], log_file: Path, ready: Path, what: str, fix: str, timeout: float = 20,
                 env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start a long-running helper (its output appended to log_file) and return once it has made `ready`
    (a socket or file; one left by an earlier run of it is removed first). If it exits first or takes longer
    than `timeout`, stop it and raise naming its log."""
    ready.unlink(missing_ok=True)
    proc = spawn(cmd, log_file, env)
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise CommandError(f"{what} did not start: {log_tail(log_file)}", fix)
        time.sleep(0.05)
    return proc


@dataclass(frozen=True)
class Restart:
    """A helper that died and was started again."""

    why: str
    restarts: int
    at: float

    def describe(self) -> str:
        return f"restarted {self.restarts}x, last at {time.strftime('%H:%M:%S', time.localtime(self.at))}: {self.why}"


def restarted(proc: subprocess.Popen | None, log_file: Path, start: Callable[[], None], previous: Restart | None,
              what: str) -> Restart | None:
    """None while the helper `proc` runs; else `start` it again and say why it had died (its log's end)."""
    if proc is None or proc.poll() is None:
        return None
    code = proc.returncode
    why = f"killed by signal {-code}" if code < 0 else f"exited with {code}: {log_tail(log_file, 300)}"
    log.error("%s %s; starting it again", what, why)
    start()
    return Restart(why, (previous.restarts if previous else 0) + 1, time.time())
