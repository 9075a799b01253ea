"""Dask the way dask-kubernetes users work, from the login node: KubeCluster asks the Dask operator in the
job's cluster for a scheduler and workers (spread over the nodes), the client reaches the scheduler through a
port-forward of the API server, and the groupby example runs on it. The cluster goes when this ends.

    ksi-multi manifest dask-operator | kubectl apply -f -      # once per job
    python3 kubecluster.py [--workers 4] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cloudpickle
from dask_kubernetes.operator import KubeCluster, make_cluster_spec
from distributed import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dask"))
import groupby  # noqa: E402  (the example next door)

cloudpickle.register_pickle_by_value(groupby)  # its functions run on workers that do not have the module

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
    parser.add_argument("--keep", action="store_true", help="leave the Dask cluster running")
    groupby.add_arguments(parser)
    parser.set_defaults(workers=4)
    args = parser.parse_args()
    cluster = KubeCluster(custom_cluster_spec=cluster_spec(args.name, args.workers), namespace=args.namespace,
                          shutdown_on_close=not args.keep, resource_timeout=args.timeout, quiet=args.json)
    try:
        with Client(cluster) as client:
            report = groupby.run(client, args)
    finally:
        cluster.close()
    return groupby.show(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
