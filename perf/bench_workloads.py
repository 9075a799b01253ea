"""Dask and Spark across 4 nodes, under each mesh plugin: wall time, and bytes that crossed between nodes.

For every mesh plugin: a 4-node job with the Dask and Spark images (the `images` key), then
  dask   the groupby example (generated rows, a shuffle, a groupby-aggregate), client on the login host
  spark  the word-count example, spark-submit --deploy-mode cluster from the login host, 4 executors
Bytes between nodes = what the mesh interfaces of all nodes sent during the run (their kernel counters).
Baseline, measured in the same run: the same computations on the login host alone (Dask LocalCluster
with 4 workers, Spark local[4]), so the ratio says what spreading over the nodes costs here.
On this 2-core machine every "node" shares the same two cores: read the ratios, not the seconds.

    python3 perf/bench_workloads.py [--meshes wireguard,vxlan] [--rows 200000] [--lines 400000]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from _sandbox import REPO, Sandbox, finish, fresh_sandbox, ksi, run_name, sh, submit

from ksi_multi.sandbox.cluster import SHARED

IMAGES = SHARED / "images"
MESHES = ("wireguard", "wireguard-forwarded", "vxlan")
HOSTS = tuple(f"node{i:02d}" for i in range(1, 5))
SPARK_CONF = ("--conf spark.executor.instances=4 --conf spark.executor.memory=512m --conf spark.driver.memory=512m "
              "--conf spark.kubernetes.executor.request.cores=250m --conf spark.kubernetes.driver.request.cores=250m")


def mesh_bytes(box: Sandbox, job: str) -> int:
    """Bytes the nodes' mesh interfaces (the one holding the 10.250/16 address) have sent so far."""
    total = 0
    env = (f"XDG_RUNTIME_DIR=/tmp/ksi-1500-{job} XDG_DATA_HOME=/tmp/ksi-multi-1500/{job}/podman/data "
           f"XDG_CONFIG_HOME=/tmp/ksi-multi-1500/{job}/podman/config PODMAN_IGNORE_CGROUPSV1_WARNING=1")
    probe = ("dev=$(ip -o -4 addr show to 10.250.0.0/16 | cut -d\" \" -f2); "
             "cat /sys/class/net/$dev/statistics/tx_bytes")
    for host in HOSTS:
        total += int(sh(box, f"{env} podman exec ksi-{job}-{host} sh -c '{probe}'", host=host).strip())
    return total


def last_json(text: str) -> dict:
    return json.loads(next(line for line in reversed(text.strip().splitlines()) if line.startswith("{")))


def example(box: Sandbox, name: str, file: str) -> str:
    """Where the sandbox user's ksi-multi keeps an example (`ksi-multi manifest NAME --path`)."""
    return next(p for p in sh(box, f"ksi-multi manifest {name} --path").split() if p.endswith(file))


def dask_run(box: Sandbox, scheduler: str, args) -> dict:
    groupby = example(box, "dask", "groupby.py")
    started = time.monotonic()
    report = last_json(sh(box, f"python3 {groupby} {scheduler} --workers 4 --json --rows {args.rows} "
                               f"--partitions {args.partitions}", timeout=1800))
    report["wall"] = time.monotonic() - started
    return report


def spark_cluster(box: Sandbox, kube: str, job: str, args) -> dict:
    started = time.monotonic()
    sh(box, f"ksi-multi spark-defaults --job {job} --image-dir {IMAGES} > ~/bench-spark.conf")
    sh(box, f"{kube} spark-submit --properties-file ~/bench-spark.conf --deploy-mode cluster "
            f"--conf spark.kubernetes.driver.pod.name=bench-wordcount {SPARK_CONF} "
            f"local:///opt/ksi-multi/examples/wordcount.py --lines {args.lines} --partitions {args.partitions} "
            "2>/dev/null", timeout=1800)
    wall = time.monotonic() - started
    report = last_json(sh(box, f"{kube} kubectl logs bench-wordcount"))
    sh(box, f"{kube} kubectl delete pod bench-wordcount --wait=false")
    report["wall"] = wall
    return report


def baseline(box: Sandbox, args) -> dict[str, dict]:
    """The same computations on the login host alone."""
    groupby = example(box, "dask", "groupby.py")
    local = ("from distributed import LocalCluster; import subprocess, sys; "
             "c = LocalCluster(n_workers=4, threads_per_worker=2, dashboard_address=None); "
             f"sys.exit(subprocess.call([sys.executable, '{groupby}', c.scheduler_address, '--workers', '4', '--json', "
             f"'--rows', '{args.rows}', '--partitions', '{args.partitions}']))")
    started = time.monotonic()
    dask = last_json(sh(box, f'python3 -c "{local}"', timeout=1800))
    dask["wall"] = time.monotonic() - started
    wordcount = example(box, "spark", "wordcount.py")
    started = time.monotonic()
    spark = last_json(sh(box, f"spark-submit --master 'local[4]' --driver-memory 2g {wordcount} --lines {args.lines} "
                              f"--partitions {args.partitions} 2>/dev/null", timeout=1800))
    spark["wall"] = time.monotonic() - started
    return {"dask": dask, "spark": spark}


def one_mesh(box: Sandbox, mesh: str, args, measure_load: bool) -> dict:
    """A job under `mesh`; the images come with it (`images`), or, once, by `ksi-multi load` (timed)."""
    archives = f"{IMAGES}/dask.tar {IMAGES}/spark.tar"
    job, status, ready = submit(box, 4, f"--mesh {mesh}" + ("" if measure_load else
                                                            f" --images {archives.replace(' ', ',')}"))
    kube = f"KUBECONFIG={status['kubeconfig']}"
    loaded = None
    try:
        if measure_load:
            size = sum(os.path.getsize(p) for p in archives.split())
            started = time.monotonic()
            sh(box, f"ksi-multi load --job {job} {archives}", timeout=1800)
            loaded = {"seconds": time.monotonic() - started, "bytes": size}
        sh(box, f"ksi-multi manifest dask | {kube} kubectl apply -f - >/dev/null; "
                f"ksi-multi manifest spark | {kube} kubectl apply -f - >/dev/null; "
                f"{kube} kubectl rollout status deploy/dask-scheduler deploy/dask-worker --timeout=300s >/dev/null",
                timeout=330)
        before = mesh_bytes(box, job)
        dask = dask_run(box, f"tcp://{HOSTS[1]}:30786", args)
        middle = mesh_bytes(box, job)
        sh(box, f"ksi-multi manifest dask | {kube} kubectl delete -f - --wait=true >/dev/null", timeout=120)
        spark = spark_cluster(box, kube, job, args)
        after = mesh_bytes(box, job)
        dask["mesh_bytes"], spark["mesh_bytes"] = middle - before, after - middle
        return {"ready_s": ready, "dask": dask, "spark": spark, "load": loaded}
    finally:
        finish(box, job)


def report(base: dict, rows: dict[str, dict], args) -> list[str]:
    out = [f"workloads on 4 nodes vs the login host alone ({args.rows * args.partitions} Dask rows, "
           f"{args.lines} Spark lines, {args.partitions} partitions)",
           f"{'setup':<22} {'dask s':>8} {'ratio':>6} {'dask MB':>9} {'ok':>3}  {'spark s':>8} {'ratio':>6} "
           f"{'spark MB':>9} {'ok':>3}  nodes (dask / spark tasks)"]
    out.append(f"{'login host alone':<22} {base['dask']['wall']:>8.1f} {1:>6.2f} {'-':>9} "
               f"{'y' if base['dask']['correct'] else 'N':>3}  {base['spark']['wall']:>8.1f} {1:>6.2f} {'-':>9} "
               f"{'y' if base['spark']['correct'] else 'N':>3}")
    for name, r in rows.items():
        d, s = r["dask"], r["spark"]
        out.append(f"{name:<22} {d['wall']:>8.1f} {d['wall'] / base['dask']['wall']:>6.2f} {d['mesh_bytes'] / 1e6:>9.1f} "
                   f"{'y' if d['correct'] else 'N':>3}  {s['wall']:>8.1f} {s['wall'] / base['spark']['wall']:>6.2f} "
                   f"{s['mesh_bytes'] / 1e6:>9.1f} {'y' if s['correct'] else 'N':>3}  "
                   f"{len([c for c in d['tasks_per_node'].values() if c])} / {len(s['tasks_per_node'])}")
    return out


def plot(base: dict, rows: dict[str, dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["login host alone", *rows]
    fig, (times, traffic) = plt.subplots(1, 2, figsize=(14, 5))
    width = 0.38
    xs = range(len(names))
    for i, kind in enumerate(("dask", "spark")):
        walls = [base[kind]["wall"]] + [r[kind]["wall"] for r in rows.values()]
        times.bar([x + (i - 0.5) * width for x in xs], walls, width, label=kind)
        if rows:
            traffic.bar([x + (i - 0.5) * width for x in range(len(rows))],
                        [r[kind]["mesh_bytes"] / 1e6 for r in rows.values()], width, label=kind)
    times.set_xticks(list(xs), names, rotation=15)
    times.set_ylabel("wall time, s")
    times.set_title("the same computation: alone vs across 4 nodes")
    times.legend()
    traffic.set_xticks(list(range(len(rows))), list(rows), rotation=15)
    traffic.set_ylabel("MB sent over the mesh (all nodes)")
    traffic.set_title("bytes that crossed between nodes")
    traffic.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--meshes", default=",".join(MESHES))
    parser.add_argument("--rows", type=int, default=200_000, help="Dask rows per partition")
    parser.add_argument("--lines", type=int, default=400_000, help="Spark corpus lines")
    parser.add_argument("--partitions", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    parser.add_argument("--out", default=str(REPO / "perf" / "results"))
    args = parser.parse_args()
    ksi("image", "build", "--output", str(IMAGES), "--workloads", "dask,spark")
    box = fresh_sandbox(box_name := run_name())
    ksi("sandbox", "up", "-N", "4", "--name", box_name)
    rows: dict[str, dict] = {}
    try:
        base = baseline(box, args)
        print(f"  login host alone: dask {base['dask']['wall']:.1f} s, spark {base['spark']['wall']:.1f} s", flush=True)
        for i, mesh in enumerate(args.meshes.split(",")):
            rows[f"{mesh}/pasta"] = one_mesh(box, mesh, args, measure_load=i == 0)
            r = rows[f"{mesh}/pasta"]
            print(f"  {mesh}/pasta: dask {r['dask']['wall']:.1f} s ({r['dask']['mesh_bytes'] / 1e6:.0f} MB), "
                  f"spark {r['spark']['wall']:.1f} s ({r['spark']['mesh_bytes'] / 1e6:.0f} MB)", flush=True)
    finally:
        if not args.keep:
            ksi("sandbox", "down", "--name", box_name)
    print("\n" + "\n".join(report(base, rows, args)))
    for name, r in rows.items():
        if r.get("load"):
            mb = r["load"]["bytes"] / 1e6
            print(f"ksi-multi load of {mb:.0f} MB (dask + spark) into 4 nodes ({name}): {r['load']['seconds']:.1f} s, "
                  f"{mb / r['load']['seconds']:.0f} MB/s per node, {4 * mb / r['load']['seconds']:.0f} MB/s in all")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "workloads.json"), "w") as fh:
        json.dump({"baseline": base, "meshes": rows, "args": vars(args)}, fh, indent=1)
    plot(base, rows, os.path.join(args.out, "workloads.png"))
    print(f"\nwrote {args.out}/workloads.json and workloads.png")


if __name__ == "__main__":
    main()
