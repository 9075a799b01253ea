"""This user's processes that belong to a job's directories on this host (podman's helpers, ksi-wg, ...)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import psutil


def naming(paths: Iterable[Path | str]) -> set[int]:
    """This user's processes (not this one) with a command-line argument naming one of `paths` or a path
    below it: /tmp/ksi-1500-12 matches /tmp/ksi-1500-12/wg.sock and --root=/tmp/ksi-1500-12, never
    /tmp/ksi-1500-123."""
    pattern = re.compile("|".join(re.escape(str(p)) + r"(?=/|$)" for p in paths))
    found = set()
    for proc in psutil.process_iter(["cmdline", "uids"]):
        try:
            if proc.info["uids"].real == os.getuid() and any(pattern.search(a) for a in proc.info["cmdline"] or []):
                found.add(proc.pid)
        except psutil.NoSuchProcess:
            continue
    found.discard(os.getpid())
    return found


def with_environment(name: str, value: str) -> set[int]:
    """This user's processes (not this one) whose environment has name=value, e.g. every process a podman
    store's commands started (their XDG_RUNTIME_DIR), whatever their command line says."""
    wanted = f"{name}={value}".encode()
    found = set()
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"].real != os.getuid() or proc.pid == os.getpid():
                continue
            with open(f"/proc/{proc.pid}/environ", "rb") as fh:
                if wanted in fh.read().split(b"\0"):
                    found.add(proc.pid)
        except (psutil.NoSuchProcess, OSError):
            continue
    return found


def end(pids: Iterable[int], grace: float) -> list[int]:
    """Give the processes `grace` seconds to end by themselves, then SIGKILL the rest; return those killed."""
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=grace) if procs else ([], [])
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return [p.pid for p in alive]
