"""Dask the way dask-kubernetes users work, from the login node: KubeCluster asks the Dask operator in the
job's cluster for a scheduler and workers (spread over the nodes), reaches the scheduler through a
port-forward of the API server, and the groupby example next door runs against that address. The Dask
cluster goes when this ends (unless --keep).

    ksi-multi manifest dask-operator | kubectl apply -f -      # once per job
    python3 kubecluster.py [--workers 4] [groupby.py's options, e.g. --json --rows 50000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from dask_kubernetes.operator import KubeCluster, make_cluster_spec

GROUPBY = Path(__file__).resolve().parent.parent / "dask" / "groupby.py"
IMAGE = "localhost/ksi-multi/dask:2024.12.1"


def cluster_spec(name: str, workers: int) -> dict:
    """The operator's default DaskCluster, with workers that say which node they run on and spread over the
    nodes (one per node first)."""
    spec = make_cluster_spec(name=name, image=IMAGE, n_workers=workers,
                             resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}})
    worker = spec["spec"]["worker"]["spec"]
    worker["containers"][0]["env"] = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    worker["topologySpreadConstraints"] = [{
        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
        "nodeTaintsPolicy": "Honor",
        "labelSelector": {"matchLabels": {"dask.org/cluster-name": name, "dask.org/component": "worker"}}}]
    return spec


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="ksi-dask")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--timeout", type=int, default=300, help="seconds for the scheduler and workers to start")
    parser.add_argument("--keep", action="store_true", help="leave the Dask cluster running")
    args, example_args = parser.parse_known_args()
    cluster = KubeCluster(custom_cluster_spec=cluster_spec(args.name, args.workers), namespace=args.namespace,
                          shutdown_on_close=not args.keep, resource_timeout=args.timeout, quiet=True)
    try:
        # The example runs as a script of its own, as a user's would, against the scheduler's address.
        return subprocess.run([sys.executable, str(GROUPBY), cluster.scheduler_address, "--workers",
                               str(args.workers), *example_args]).returncode
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main())
