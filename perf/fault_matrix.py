"""The fault matrix: what a 2-node job does when it is stopped or broken at each point, in the sandbox.

Cases: scancel during each phase; SIGKILL of a worker's agent, of rank 0's agent, of a worker's node
container, of a worker's ksi-wg; the mesh port blocked on a worker; the time limit reached. For each: how
the job ended (Slurm's state, the phase the stop landed in), what status.json says (state, and the error
or the reason), the longest teardown of an agent, and what was left on each host once the job was gone
(processes of the user, the job's /tmp entries and cgroups; its sockets and network namespaces live only
as long as its processes). "left" must be "nothing" in every row.

    python3 perf/fault_matrix.py [--cases scancel-node,kill-ksi-wg,...] [--keep]

Writes perf/results/faults.json and faults.md (the table docs/reliability.md shows); with --cases, the
other rows of an earlier run are kept.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Callable

from _sandbox import REPO, Sandbox, fresh_sandbox, ksi, run_name, sh

from ksi_multi.sandbox.cluster import SHARED

HOSTS = ("node01", "node02")
PHASES = ("doctor", "rendezvous", "node", "mesh", "cluster", "ready", "wait")
SBATCH = f"sbatch --parsable -N 2 -w {','.join(HOSTS)} {{slurm}} $(ksi-multi batch-script --path) " \
         f"--image-dir {SHARED / 'images'} {{args}}"
ENDED = ("RUNNING", "PENDING", "COMPLETING", "CONFIGURING")


def submit(box: Sandbox, args: str = "", slurm: str = "") -> str:
    return sh(box, SBATCH.format(slurm=slurm, args=args)).strip()


def job_dir(job: str) -> str:
    return f"~/.ksi-multi/jobs/{job}"


def status(box: Sandbox, job: str) -> dict:
    text = sh(box, f"cat {job_dir(job)}/status.json 2>/dev/null || true")
    return json.loads(text) if text.strip() else {}


def slurm_state(box: Sandbox, job: str) -> str:
    return re.search(r"JobState=(\S+)", sh(box, f"scontrol show job {job} -o", root=True)).group(1)


def wait_ready(box: Sandbox, job: str, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while status(box, job).get("state") != "ready":
        if time.monotonic() > deadline or slurm_state(box, job) not in ENDED:
            raise SystemExit(f"job {job} did not get ready: {status(box, job)}")
        time.sleep(1)


def wait_gone(box: Sandbox, job: str, timeout: float = 600) -> tuple[str, float]:
    """Wait until Slurm is done with the job: (its final state, seconds waited)."""
    started = time.monotonic()
    while (state := slurm_state(box, job)) in ENDED:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"job {job} still {state} after {timeout} s")
        time.sleep(0.5)
    return state, time.monotonic() - started


def leftovers(box: Sandbox, job: str) -> dict[str, list[str]]:
    """What the job left on each host, checked until 35 s after its end (the agents' own teardown may run on):
    the user's processes that carry the job's id in their environment (the agent's children, podman's, the
    helpers'), and the job's /tmp entries and cgroups (which hold the node container's processes)."""
    probe = ("for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/environ 2>/dev/null | "
             f"grep -qx SLURM_JOB_ID={job} && echo ${{p#/proc/}} $(tr '\\0' ' ' < $p/cmdline | cut -c1-80); done; "
             f"ls -d /tmp/ksi-multi-1500/{job} /tmp/ksi-1500-{job} /sys/fs/cgroup/*/ksi-multi/ksiuser/job-{job} "
             "2>/dev/null; true")
    deadline = time.monotonic() + 35
    while True:
        found = {h: [line for line in sh(box, probe, host=h).splitlines() if line.strip()] for h in HOSTS}
        if not any(found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def scrub(box: Sandbox) -> None:
    """Whatever a case left, gone before the next one starts (as root): the next row counts its own job only."""
    for host in HOSTS:
        sh(box, "pkill -KILL -u ksiuser || true; sleep 0.5; "
                "for d in /sys/fs/cgroup/*/ksi-multi/ksiuser/job-*; do find \"$d\" -depth -type d -exec rmdir {} + "
                "2>/dev/null; done; "
                "rm -rf /tmp/ksi-multi-1500 /tmp/ksi-1500-*; true", host=host, root=True)


def podman_env(job: str) -> str:
    return (f"XDG_RUNTIME_DIR=/tmp/ksi-1500-{job} XDG_DATA_HOME=/tmp/ksi-multi-1500/{job}/podman/data "
            f"XDG_CONFIG_HOME=/tmp/ksi-multi-1500/{job}/podman/config PODMAN_IGNORE_CGROUPSV1_WARNING=1")


def outcome(box: Sandbox, job: str, note: str = "") -> dict:
    """Everything a row shows, once the job has ended."""
    state, _ = wait_gone(box, job)
    left = leftovers(box, job)
    logs = {h: sh(box, f"cat {job_dir(job)}/agent-{h}.log 2>/dev/null || true") for h in HOSTS}
    landed = re.search(r"during phase (\w+)", logs["node01"])
    teardowns = [float(m) for text in logs.values() for m in re.findall(r"teardown: done in ([\d.]+) s", text)]
    final = status(box, job)
    return {"job": job, "slurm": state, "landed": landed.group(1) if landed else "",
            "state": final.get("state"), "cause": final.get("error") or final.get("reason") or "",
            "lost": {n["name"]: n["lost"] for n in final.get("nodes", []) if n.get("lost")},
            "teardown_s": max(teardowns) if teardowns else None,
            "teardowns": len(teardowns), "left": {h: v for h, v in left.items() if v}, "note": note}


def scancel_during(phase: str) -> Callable[[Sandbox], dict]:
    def case(box: Sandbox) -> dict:
        job = submit(box)
        log = f"{job_dir(job)}/agent-node01.log"
        # on the login host itself: polling from here would miss phases that last a second
        sh(box, f"for i in $(seq 6000); do grep -q 'phase {phase}: start' {log} 2>/dev/null && break; sleep 0.05; "
                f"done; scancel {job}", timeout=400)
        return outcome(box, job)
    return case


def kill_agent(host: str) -> Callable[[Sandbox], dict]:
    """A worker's agent killed: rank 0 should give its node up and serve on (then the case cancels the job);
    rank 0's: the workers should stop by themselves."""
    def case(box: Sandbox) -> dict:
        job = submit(box)
        wait_ready(box, job)
        sh(box, "pkill -KILL -u ksiuser -f '[k]si[-_]multi agent'", host=host)
        started = time.monotonic()
        if host != HOSTS[0]:
            return outcome(box, job, observe_then_cancel(box, job, 90))
        result = outcome(box, job)
        result["note"] = f"job ended {time.monotonic() - started:.0f} s after the kill"
        return result
    return case


def observe_then_cancel(box: Sandbox, job: str, seconds: float) -> str:
    """Watch the job serve on after a fault: what rank 0 made of it (a node lost, a helper restarted), and
    after how long; then cancel the job."""
    started = time.monotonic()
    seen = ""
    while time.monotonic() - started < seconds and slurm_state(box, job) in ENDED:
        now = status(box, job)
        found = [f"{n['name']} {what} after {time.monotonic() - started:.0f} s: {n[what]}"
                 for n in now.get("nodes", []) for what in ("lost", "mesh_helper") if n.get(what)]
        if found:
            seen = "; ".join(found)
            break
        time.sleep(2)
    if slurm_state(box, job) in ENDED:
        sh(box, f"scancel {job}")
    return seen or f"nothing reported within {seconds:.0f} s"


def kill_node_container(box: Sandbox) -> dict:
    job = submit(box)
    wait_ready(box, job)
    sh(box, f"{podman_env(job)} podman kill --signal KILL ksi-{job}-node02", host="node02")
    seen = observe_then_cancel(box, job, 150)
    return outcome(box, job, seen)


def kill_ksi_wg(box: Sandbox) -> dict:
    job = submit(box)
    wait_ready(box, job)
    sh(box, "pkill -KILL -u ksiuser -f '[k]si-wg up'", host="node02")
    seen = observe_then_cancel(box, job, 60)
    return outcome(box, job, seen)


def mesh_port_blocked(box: Sandbox) -> dict:
    rule = "INPUT -p udp --dport 51820 -j DROP"
    sh(box, f"iptables -A {rule}", host="node02", root=True)
    try:
        job = submit(box, "--mesh-port 51820 --rendezvous-timeout 20")
        return outcome(box, job)
    finally:
        sh(box, f"iptables -D {rule}", host="node02", root=True)


def time_limit(box: Sandbox) -> dict:
    job = submit(box, slurm="--time=3")
    return outcome(box, job, "sbatch --time=3: TERM 60 s before the limit (the batch script's --signal=B:TERM@60)")


CASES: dict[str, Callable[[Sandbox], dict]] = {
    **{f"scancel-{p}": scancel_during(p) for p in PHASES},
    "kill-agent-worker": kill_agent("node02"),
    "kill-agent-rank0": kill_agent("node01"),
    "kill-node-container": kill_node_container,
    "kill-ksi-wg": kill_ksi_wg,
    "mesh-port-blocked": mesh_port_blocked,
    "time-limit": time_limit,
}


def table(rows: dict[str, dict]) -> list[str]:
    out = ["| case | Slurm | landed in | status | cause | node lost / seen | longest teardown | left on hosts |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        teardown = f"{r['teardown_s']:.1f} s ({r['teardowns']} agents)" if r["teardown_s"] is not None else "none"
        left = "; ".join(f"{h}: {', '.join(v)}" for h, v in r["left"].items()) or "nothing"
        seen = r["note"] or "; ".join(f"{k}: {v}" for k, v in r["lost"].items())
        out.append(f"| {name} | {r['slurm']} | {r['landed'] or '-'} | {r['state']} | {r['cause']} | {seen or '-'} "
                   f"| {teardown} | {left} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    parser.add_argument("--out", default=str(REPO / "perf" / "results"))
    args = parser.parse_args()
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")
    ksi("image", "build", "--output", str(SHARED / "images"), "--workloads", "dask,spark")
    box = fresh_sandbox(box_name := run_name())
    ksi("sandbox", "up", "-N", str(len(HOSTS)), "--name", box_name)
    rows: dict[str, dict] = {}
    try:
        for name in args.cases.split(","):
            started = time.monotonic()
            rows[name] = CASES[name](box)
            scrub(box)
            r = rows[name]
            print(f"  {name}: {r['slurm']}, status {r['state']} ({r['cause']}), left "
                  f"{r['left'] or 'nothing'} [{time.monotonic() - started:.0f} s]", flush=True)
    finally:
        if not args.keep:
            ksi("sandbox", "down", "--name", box_name)
    print("\n" + "\n".join(table(rows)))
    try:  # rows of an earlier run stay unless this run measured them again (--cases)
        with open(f"{args.out}/faults.json") as fh:
            rows = {**json.load(fh), **rows}
    except (OSError, ValueError):
        pass
    rows = {name: rows[name] for name in CASES if name in rows}
    lines = table(rows)
    with open(f"{args.out}/faults.json", "w") as fh:
        json.dump(rows, fh, indent=1)
    with open(f"{args.out}/faults.md", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(f"\nwrote {args.out}/faults.json and faults.md")


if __name__ == "__main__":
    main()
