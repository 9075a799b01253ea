#!/bin/bash
# A batch workload (ksi-multi submit -N 4 -- bash workloads_job.sh OUT): Dask and Spark across the job's
# nodes, as docs/workloads.md shows. Writes both reports to OUT; exits non-zero if either is wrong.
set -euo pipefail
out=$1
ksi-multi manifest dask | kubectl apply -f -
ksi-multi manifest spark | kubectl apply -f -
kubectl rollout status deploy/dask-scheduler deploy/dask-worker --timeout=300s
python3 "$(ksi-multi manifest dask --path | grep groupby.py)" "tcp://$(hostname):30786" --workers 4 --json \
  --rows 50000 > "$out.dask"
ksi-multi spark-defaults > "$out.conf"
spark-submit --properties-file "$out.conf" --deploy-mode cluster --name wordcount \
  --conf spark.kubernetes.driver.pod.name=wordcount-driver --conf spark.executor.instances=4 \
  --conf spark.executor.memory=512m --conf spark.driver.memory=512m \
  --conf spark.kubernetes.executor.request.cores=250m --conf spark.kubernetes.driver.request.cores=250m \
  local:///opt/ksi-multi/examples/wordcount.py --lines 100000 2>"$out.spark-submit.log"
kubectl logs wordcount-driver | tail -n 1 > "$out.spark"
python3 -c 'import json, sys; sys.exit(0 if all(json.load(open(f))["correct"] for f in sys.argv[1:]) else 9)' \
  "$out.dask" "$out.spark"
