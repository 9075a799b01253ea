"""Startup benchmark in the sandbox: submit -> Ready per phase, and the coordinator and mesh at scale.

Run as root:  python3 perf/bench_startup.py [--sizes 1,2,4,8] [--mesh-sizes 16,32,64] [--out DIR] [--keep]

1. In a fresh sandbox of max(sizes) hosts, full Kubernetes jobs, rank 0's phases and submit -> Ready:
   `N=1 cold` (the host's node image cache empty: the image is loaded), `N=<max> cold` (every other host
   loads it), then each N warm (the cache filled, as for every job after a host's first). For each run:
   the memory each virtual host's processes hold at Ready (anonymous and tmpfs, from its memory cgroup,
   against the same before the job): rank 0 (the control plane) and the average other node, and how many
   nodes would fit into the memory the machine had available before the job.
2. In a fresh sandbox of max(mesh-sizes) hosts, `--until mesh` jobs (nodes without Kubernetes, the node
   image cache shared by all virtual hosts, which share one disk here): registration (rank 0's rendezvous
   phase), the mesh's steps on rank 0 (exchange of keys through rank 0, plan, ksi-wg up, every peer's
   handshake), rank 0's agent memory, the hosts' memory at its peak.
Prints tables and writes <out>/startup.json and startup.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re

from _sandbox import REPO, finish, fresh_sandbox, ksi, run_name, sh, submit

from ksi_multi.sandbox.cluster import SHARED

IMAGES = SHARED / "images"
PHASES = ("doctor", "rendezvous", "node", "mesh", "cluster", "ready")
MESH_STEPS = ("exchange", "plan", "up", "reach")


def mem_available_mib() -> float:
    text = open("/proc/meminfo").read()
    return int(re.search(r"MemAvailable:\s+(\d+)", text).group(1)) / 1024


def host_memory_mib(box, host: str) -> float:
    """What a virtual host's processes hold in memory: anonymous memory and tmpfs (the nodes' /run and /tmp),
    from its memory cgroup (page cache, which the kernel takes back, not counted)."""
    from ksi_multi.sandbox import cgroups

    stat = (cgroups.ROOT / "memory" / cgroups.base(box.name) / host / "memory.stat").read_text()
    values = dict(line.split() for line in stat.splitlines())
    return (int(values["total_rss"]) + int(values["total_shmem"])) / 2**20


def job_run(box, nodes: int, options: str, until: str = "") -> dict:
    """A job on node01..nodeNN until Ready (or, --until, until it stopped after that phase), with memory."""
    hosts = [f"node{i:02d}" for i in range(1, nodes + 1)]
    before = mem_available_mib()
    idle = {h: host_memory_mib(box, h) for h in hosts}
    low = [before]
    peak = dict.fromkeys(idle, 0.0)

    def sample() -> None:
        low[0] = min(low[0], mem_available_mib())
        if until:  # the nodes are gone once the job stops: their peak, not their use at the end
            peak.update({h: max(v, host_memory_mib(box, h) - idle[h]) for h, v in peak.items()})

    job, status, seconds = submit(box, nodes, options, until=until, on_poll=sample, timeout=1800)
    if not until:
        peak.update({h: host_memory_mib(box, h) - idle[h] for h in idle})
    finish(box, job)
    first, *others = peak.values()
    return {"job": job, "nodes": nodes, "seconds": round(seconds, 1), "timings": status.get("timings", {}),
            "mesh_steps": status.get("mesh_steps", {}), "agent_rss_mb": status.get("agent_rss_mb"),
            "mem_before_mib": round(before), "mem_drop_mib": round(before - low[0]),
            "mem_rank0_mib": round(first), "mem_other_mib": round(sum(others) / len(others)) if others else None}


def clear_caches(box, nodes: int) -> None:
    for i in range(1, nodes + 1):
        sh(box, "ksi-multi cleanup --cache", host=f"node{i:02d}")


# 2 cores for every host: at N=8, eight nodes import their images at once (a minute or more each)
PATIENT = "--node-timeout 900 --ready-timeout 900 --rendezvous-timeout 900"


def full_runs(sizes: list[int], keep: bool, cold: bool) -> dict[str, dict]:
    name = run_name()
    box = fresh_sandbox(name)
    ksi("sandbox", "up", "-N", str(max(sizes)), "--name", name)
    runs: dict[str, dict] = {}
    try:
        clear_caches(box, max(sizes))
        if cold:
            runs["N=1 cold"] = job_run(box, 1, PATIENT)
            print(f"  N=1 cold: {runs['N=1 cold']['seconds']:.1f} s", flush=True)
            if max(sizes) > 1:  # the other hosts' first job
                runs[f"N={max(sizes)} cold"] = job_run(box, max(sizes), PATIENT)
                print(f"  N={max(sizes)} cold: {runs[f'N={max(sizes)} cold']['seconds']:.1f} s", flush=True)
        else:  # the caches filled, unmeasured
            job_run(box, max(sizes), PATIENT, until="node")
        for n in sizes:
            runs[f"N={n}"] = job_run(box, n, PATIENT)
            print(f"  N={n}: {runs[f'N={n}']['seconds']:.1f} s", flush=True)
    finally:
        if not keep:
            ksi("sandbox", "down", "--name", name)
    return runs


def mesh_runs(sizes: list[int], keep: bool) -> dict[str, dict]:
    name = run_name()
    box = fresh_sandbox(name)
    ksi("sandbox", "up", "-N", str(max(sizes)), "--name", name)
    runs: dict[str, dict] = {}
    # the virtual hosts share one disk: one copy of the node image for all of them, in the shared home
    shared = f"--image-cache-dir /home/ksiuser/.ksi-multi/image-cache {PATIENT}"
    try:
        job_run(box, 1, shared, until="node")  # fills the shared cache: the runs below measure warm nodes
        for n in sizes:
            runs[f"N={n}"] = job_run(box, n, shared, until="mesh")
            r = runs[f"N={n}"]
            print(f"  mesh N={n}: {r['seconds']:.1f} s, steps {r['mesh_steps']}", flush=True)
    finally:
        if not keep:
            ksi("sandbox", "down", "--name", name)
    return runs


def report_full(runs: dict[str, dict]) -> list[str]:
    lines = [f"{'startup (s)':<22}" + "".join(f"{k:>11}" for k in runs)]
    for phase in PHASES:
        lines.append(f"  {phase:<20}" + "".join(f"{r['timings'].get(phase, 0):>11.1f}" for r in runs.values()))
    lines.append(f"  {'submit->Ready':<20}" + "".join(f"{r['seconds']:>11.1f}" for r in runs.values()))
    lines += memory_rows(runs)
    lines.append(f"  {'nodes that fit':<20}" + "".join(f"{fit(r):>11}" for r in runs.values()))
    return lines


def memory_rows(runs: dict[str, dict]) -> list[str]:
    return [f"  {'rank 0 (MiB)':<20}" + "".join(f"{r['mem_rank0_mib']:>11}" for r in runs.values()),
            f"  {'other node (MiB)':<20}" + "".join(f"{r['mem_other_mib'] or '-':>11}" for r in runs.values())]


def fit(run: dict) -> str:
    """Nodes that fit into the memory available before the job: rank 0 and as many others as there is room."""
    if not run["mem_other_mib"]:
        return "-"
    return str(1 + int((run["mem_before_mib"] - run["mem_rank0_mib"]) // max(run["mem_other_mib"], 1)))


def report_mesh(runs: dict[str, dict]) -> list[str]:
    lines = [f"{'--until mesh (s)':<22}" + "".join(f"{k:>11}" for k in runs)]
    for phase in ("rendezvous", "node", "mesh"):
        lines.append(f"  {phase:<20}" + "".join(f"{r['timings'].get(phase, 0):>11.1f}" for r in runs.values()))
    for step in MESH_STEPS:
        lines.append(f"    mesh {step:<15}" + "".join(f"{r['mesh_steps'].get(step, 0):>11.2f}"
                                                      for r in runs.values()))
    lines.append(f"  {'submit->stopped':<20}" + "".join(f"{r['seconds']:>11.1f}" for r in runs.values()))
    lines.append(f"  {'rank 0 agent (MiB)':<20}" + "".join(f"{r['agent_rss_mb'] or 0:>11.0f}" for r in runs.values()))
    return lines + memory_rows(runs)


def plot(full: dict[str, dict], mesh: dict[str, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(runs, phases, title) for runs, phases, title in (
        (full, PHASES, "submit -> Ready, rank 0's phases"), (mesh, ("rendezvous", "node", "mesh"), "--until mesh"))
        if runs]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    for ax, (runs, phases, title) in zip(axes[0], panels, strict=True):
        bottom = [0.0] * len(runs)
        for phase in phases:
            values = [r["timings"].get(phase, 0) for r in runs.values()]
            ax.bar(list(runs), values, bottom=bottom, label=phase)
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.plot(list(runs), [r["seconds"] for r in runs.values()], "k.", label="submit -> end")
        ax.set_ylabel("seconds")
        ax.set_title(title)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,2,4,8", help="full Kubernetes jobs of these sizes")
    parser.add_argument("--mesh-sizes", default="16,32,64", help="--until mesh jobs of these sizes ('' for none)")
    parser.add_argument("--keep", action="store_true", help="leave the sandboxes up")
    parser.add_argument("--no-cold", action="store_true", help="fill the image caches unmeasured: warm runs only")
    parser.add_argument("--out", default=str(REPO / "perf" / "results"), help="where startup.json/png go")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",") if n]
    mesh_sizes = [int(n) for n in args.mesh_sizes.split(",") if n]
    ksi("image", "build", "--output", str(IMAGES))
    full = full_runs(sizes, args.keep, cold=not args.no_cold) if sizes else {}
    if full:
        print("\n".join(report_full(full)), flush=True)
    mesh = mesh_runs(mesh_sizes, args.keep) if mesh_sizes else {}
    if mesh:
        print("\n".join(report_mesh(mesh)), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "startup.json"), "w") as fh:
        json.dump({"full": full, "mesh": mesh}, fh, indent=1)
    plot(full, mesh, os.path.join(args.out, "startup.png"))
    print(f"\nwrote {args.out}/startup.json and startup.png")


if __name__ == "__main__":
    main()
