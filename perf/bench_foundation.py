#!/usr/bin/env python3
"""Foundation timings: sandbox up (cold and warm), `sbatch -N 4` until every agent registered, sandbox down.

Run as root:  python3 perf/bench_foundation.py [--nodes 4] [--repeat 3] [--skip-cold]
Cold = the sandbox userland built from Debian's mirror into an empty cache; warm = cached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from _sandbox import REPO, Sandbox, fresh_sandbox, run_name


def ksi(*args: str, env: dict | None = None) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "ksi_multi", *args], check=True, cwd=REPO, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.monotonic() - started


def job_to_registered(box: Sandbox, nodes: int) -> tuple[float, dict]:
    started = time.monotonic()
    out = box.exec("login", f"sbatch --parsable -N {nodes} $(ksi-multi batch-script --path) --until rendezvous",
                   capture=True, check=True).stdout
    job = out.strip().split(";")[0]
    registered = None
    while True:
        text = box.exec("login", f"cat ~/.ksi-multi/jobs/{job}/status.json 2>/dev/null", capture=True).stdout
        data = json.loads(text) if text.strip() else {}
        if registered is None and "rendezvous" in data.get("timings", {}):
            registered = time.monotonic() - started
        state = re.search(r"JobState=(\S+)", box.exec("login", ["scontrol", "show", "job", job, "-o"],
                                                      root=True, capture=True).stdout).group(1)
        if state not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
            if state != "COMPLETED" or registered is None:
                raise SystemExit(f"job {job} ended {state} without registering everyone")
            return registered, data["timings"]
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-cold", action="store_true")
    args = parser.parse_args()
    box = fresh_sandbox(box_name := run_name())
    rows: dict[str, list[float]] = {}
    if not args.skip_cold:
        with tempfile.TemporaryDirectory(prefix="ksi-bench-cache-") as cache:
            env = {**os.environ, "KSI_SANDBOX_CACHE": cache}
            rows["sandbox up, cold (userland built)"] = [ksi("sandbox", "up", "-N", str(args.nodes), "--name", box_name, env=env)]
            rows["sandbox down"] = [ksi("sandbox", "down", "--name", box_name)]
    for _ in range(args.repeat):
        rows.setdefault("sandbox up, warm (cached userland)", []).append(
            ksi("sandbox", "up", "-N", str(args.nodes), "--name", box_name))
        seconds, timings = job_to_registered(box, args.nodes)
        rows.setdefault(f"sbatch -N {args.nodes} to all registered", []).append(seconds)
        for phase, value in timings.items():
            rows.setdefault(f"  agent phase {phase} (rank 0)", []).append(value)
        rows.setdefault("sandbox down", []).append(ksi("sandbox", "down", "--name", box_name))
    print(f"\nksi-multi foundation benchmark: {args.nodes} nodes, {args.repeat} warm runs, {os.cpu_count()} CPUs\n")
    print(f"{'step':<42} {'median s':>9} {'min s':>7} {'max s':>7} {'runs':>5}")
    for step, values in rows.items():
        print(f"{step:<42} {statistics.median(values):>9.2f} {min(values):>7.2f} {max(values):>7.2f} {len(values):>5}")


if __name__ == "__main__":
    main()
