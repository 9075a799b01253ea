"""`ksi-multi sandbox demo`: the whole user story on the virtual cluster, with a printed summary."""

from __future__ import annotations

import json
import re
import time

from ksi_multi import agent, status
from ksi_multi.errors import KsiError
from ksi_multi.sandbox.cluster import Sandbox
from ksi_multi.sandbox.plan import SandboxPlan

FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def last_available_phase() -> str:
    return [p for p in agent.PHASES if p in agent.registry()][-1]


def run_demo(box: Sandbox, nodes: int, echo=print, timeout: float = 600) -> dict:
    started = time.monotonic()
    if not box.alive():
        box.up(SandboxPlan(name=box.name, nodes=nodes), echo=echo)
    elif box.plan().nodes < nodes:
        raise KsiError(f"sandbox '{box.name}' is up with {box.plan().nodes} nodes, fewer than {nodes}",
                       "sudo ksi-multi sandbox down; then run the demo again")
    until = last_available_phase()
    echo(f"submitting as the sandbox user: ksi-multi submit -N {nodes} --until {until}")
    out = box.exec("login", ["ksi-multi", "submit", "-N", str(nodes), "--until", until], capture=True)
    if out.returncode != 0:
        raise KsiError(f"submit failed: {out.stderr.strip()}")
    echo(out.stdout.rstrip())
    job = re.search(r"submitted job (\d+)", out.stdout).group(1)
    deadline = time.monotonic() + timeout
    while True:
        state = re.search(r"JobState=(\S+)", box.exec(
            "login", ["scontrol", "show", "job", job, "-o"], capture=True).stdout).group(1)
        if state in FINISHED:
            break
        if time.monotonic() > deadline:
            raise KsiError(f"demo job {job} still {state} after {timeout:g} s", f"see ~/.ksi-multi/jobs/{job}/ in the sandbox")
        time.sleep(0.5)
    data = json.loads(box.exec("login", ["ksi-multi", "status", "--job", job, "--json"], capture=True).stdout or "{}")
    echo("")
    for line in status.render(data) if data else [f"job {job}: no status"]:
        echo(line)
    echo(f"\nSlurm: job {job} {state}; demo took {time.monotonic() - started:.1f} s")
    if state != "COMPLETED":
        raise KsiError(f"demo job {job} ended {state}", f"look at ~/.ksi-multi/jobs/{job}/ (sandbox shell)")
    return data
