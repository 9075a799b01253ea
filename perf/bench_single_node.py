#!/usr/bin/env python3
"""Single-node startup and pod->host bandwidth: pasta vs slirp4netns, measured in one run.

Run as root:  python3 perf/bench_single_node.py [--seconds 5] [--keep]
For each network backend a `sbatch -N 1` job is started in a fresh sandbox; the table shows every
agent phase's duration, and the TCP bandwidth from a pod to the node's host (iperf3, 1 stream) as a
ratio to host->host bandwidth between two sandbox hosts measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time

from _sandbox import Sandbox, finish, fresh_sandbox, iperf_gbps, ksi, run_name, sh, submit

from ksi_multi.sandbox.cluster import SHARED

IMAGES = SHARED / "images"
TOOLBOX = "localhost/ksi-multi/toolbox:1"
PHASES = ("doctor", "rendezvous", "node", "mesh", "cluster", "ready")


def host_to_host(box: Sandbox, seconds: int) -> float:
    sh(box, "setsid iperf3 -s -1 -p 5301 >/dev/null 2>&1 < /dev/null &", host="node02")
    time.sleep(0.5)
    return iperf_gbps(sh(box, f"iperf3 -c node02 -p 5301 -t {seconds} -J", host="node01"))


def run_backend(box: Sandbox, backend: str, seconds: int) -> dict:
    job, status, total = submit(box, 1, f"--net-backend {backend}")
    kube = f"KUBECONFIG={status['kubeconfig']}"
    sh(box, "setsid iperf3 -s -1 -p 5201 >/dev/null 2>&1 < /dev/null &", host="node01")
    sh(box, f"{kube} kubectl run iperf --image={TOOLBOX} --restart=Never --command -- "
            f"iperf3 -c {status['nodes'][0]['host']} -p 5201 -t {seconds} -J")
    sh(box, f"{kube} kubectl wait --for=jsonpath='{{.status.phase}}'=Succeeded pod/iperf --timeout={seconds + 120}s",
       timeout=seconds + 180)
    gbps = iperf_gbps(sh(box, f"{kube} kubectl logs iperf"))
    finish(box, job)
    return {"timings": status["timings"], "submit_to_ready": total, "pod_to_host_gbps": gbps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 duration")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = parser.parse_args()
    box = fresh_sandbox(box_name := run_name())
    ksi("image", "build", "--output", str(IMAGES))
    ksi("sandbox", "up", "-N", "2", "--name", box_name)
    try:
        baseline = host_to_host(box, args.seconds)
        results = {b: run_backend(box, b, args.seconds) for b in ("pasta", "slirp4netns")}
    finally:
        if not args.keep:
            ksi("sandbox", "down", "--name", box_name)
    names = list(results)
    print(f"\nksi-multi single-node benchmark ({os.cpu_count()} CPUs; iperf3 {args.seconds} s, 1 stream)\n")
    print(f"{'startup phase (s)':<28}" + "".join(f"{n:>14}" for n in names))
    for phase in PHASES:
        print(f"{'  ' + phase:<28}" + "".join(f"{results[n]['timings'].get(phase, 0):>14.1f}" for n in names))
    print(f"{'  submit to Ready':<28}" + "".join(f"{results[n]['submit_to_ready']:>14.1f}" for n in names))
    print(f"\n{'TCP bandwidth':<28}" + "".join(f"{n:>14}" for n in names) + f"{'host->host':>14}")
    print(f"{'  Gbit/s':<28}" + "".join(f"{results[n]['pod_to_host_gbps']:>14.2f}" for n in names)
          + f"{baseline:>14.2f}")
    print(f"{'  ratio to host->host':<28}" + "".join(f"{results[n]['pod_to_host_gbps'] / baseline:>14.2f}"
                                                    for n in names) + f"{1:>14.2f}")


if __name__ == "__main__":
    main()
