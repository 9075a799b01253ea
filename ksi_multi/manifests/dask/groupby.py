"""A Dask computation across the job's nodes, from the login node: generated data (fixed seed), a shuffle
and a groupby-aggregate, checked against pandas on the client; prints where every task ran.

    python3 groupby.py tcp://<node host>:30786 [--workers 4] [--partitions 32] [--rows 200000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

# Debian's dask has no dask-expr: the classic DataFrame implementation, which says so on import.
warnings.filterwarnings("ignore", message=r"\s*Dask dataframe query planning is disabled", category=FutureWarning)
from dask import dataframe as dd  # noqa: E402
from dask import delayed  # noqa: E402
from distributed import Client, get_task_stream  # noqa: E402

KEYS = 1000


def partition(i: int, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + i)
    return pd.DataFrame({"key": rng.integers(0, KEYS, rows), "value": rng.integers(0, 1000, rows)})


def node_name() -> str:
    return os.environ.get("NODE_NAME", "unknown")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scheduler", help="tcp://HOST:PORT of the Dask scheduler (its NodePort)")
    parser.add_argument("--workers", type=int, default=1, help="wait for this many workers first")
    parser.add_argument("--partitions", type=int, default=32)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per partition")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a report")
    args = parser.parse_args()

    with Client(args.scheduler, timeout=args.timeout) as client:
        client.wait_for_workers(args.workers, timeout=args.timeout)
        nodes = client.run(node_name)  # worker address -> the Kubernetes node it runs on
        started = time.monotonic()
        parts = [delayed(partition)(i, args.rows, args.seed) for i in range(args.partitions)]
        frame = dd.from_delayed(parts, meta={"key": "int64", "value": "int64"})
        shuffled = frame.shuffle("key", npartitions=args.partitions)  # all-to-all: data crosses the nodes
        with get_task_stream(client) as stream:
            result = shuffled.groupby("key")["value"].agg(["sum", "count"]).compute()
        seconds = time.monotonic() - started

    expected = pd.concat([partition(i, args.rows, args.seed) for i in range(args.partitions)])
    expected = expected.groupby("key")["value"].agg(["sum", "count"])
    correct = result.sort_index().equals(expected.sort_index())
    tasks: dict[str, int] = {}
    for task in stream.data:
        node = nodes.get(task.get("worker"), "unknown")
        tasks[node] = tasks.get(node, 0) + 1
    report = {"correct": bool(correct), "groups": len(result), "rows": args.partitions * args.rows,
              "total": int(result["sum"].sum()), "workers": len(nodes), "seconds": round(seconds, 2),
              "tasks_per_node": dict(sorted(tasks.items()))}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"groupby-aggregate of {report['rows']} rows into {report['groups']} groups on {report['workers']} "
              f"workers in {seconds:.1f} s: {'correct' if correct else 'WRONG'} (sum {report['total']})")
        for node, count in report["tasks_per_node"].items():
            print(f"  {node}: {count} tasks")
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
