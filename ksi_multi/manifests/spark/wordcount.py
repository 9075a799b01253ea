"""Word counts over a generated corpus (fixed seed), checked against plain Python in the driver; prints
where every task ran. In the Spark image as local:///opt/ksi-multi/examples/wordcount.py.

    spark-submit ... wordcount.py [--lines 400000] [--partitions 16] [--seed 2026]
The last line of the driver's output is one JSON object: {"correct", "words", "distinct", "tasks_per_node", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from operator import add

from pyspark.sql import SparkSession

VOCABULARY = [f"w{i:03d}" for i in range(500)]
WORDS_PER_LINE = 12


def lines(partition: int, count: int, seed: int) -> list[str]:
    rng = random.Random(seed * 100_003 + partition)
    return [" ".join(rng.choices(VOCABULARY, k=WORDS_PER_LINE)) for _ in range(count)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=400_000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    per_part = args.lines // args.partitions

    spark = SparkSession.builder.appName("ksi-multi-wordcount").getOrCreate()
    sc = spark.sparkContext
    started = time.monotonic()

    def generate(part: int):
        return (part, os.environ.get("NODE_NAME", "unknown"), lines(part, per_part, args.seed))

    corpus = sc.parallelize(range(args.partitions), args.partitions).map(generate).cache()
    placement = dict(corpus.map(lambda t: (t[0], t[1])).collect())
    counts = dict(corpus.flatMap(lambda t: t[2]).flatMap(str.split).map(lambda w: (w, 1))
                  .reduceByKey(add, numPartitions=args.partitions).collect())
    seconds = time.monotonic() - started
    spark.stop()

    expected = Counter(w for p in range(args.partitions) for line in lines(p, per_part, args.seed) for w in line.split())
    report = {"correct": counts == dict(expected), "words": sum(counts.values()), "distinct": len(counts),
              "seconds": round(seconds, 2), "tasks_per_node": dict(sorted(Counter(placement.values()).items()))}
    print(json.dumps(report), flush=True)
    return 0 if report["correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
