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
# Client mode: the driver is a pod of the cluster, executors connect back to it.
kubectl apply -f "$(ksi-multi manifest spark --path | grep client-pod.yaml)"
kubectl wait --for=condition=Ready pod/spark-client --timeout=180s
kubectl exec spark-client -- bash -c 'spark-submit --master k8s://https://kubernetes.default.svc \
  --deploy-mode client --conf spark.driver.host=$POD_IP --conf spark.kubernetes.container.image=$SPARK_IMAGE \
  --conf spark.kubernetes.container.image.pullPolicy=IfNotPresent \
  --conf spark.kubernetes.authenticate.driver.serviceAccountName=spark \
  --conf spark.kubernetes.driver.pod.name=spark-client \
  --conf spark.kubernetes.executor.podTemplateFile=/opt/ksi-multi/templates/executor.yaml \
  --conf spark.executor.instances=4 --conf spark.executor.memory=512m \
  --conf spark.kubernetes.executor.request.cores=250m \
  /opt/ksi-multi/examples/wordcount.py --lines 100000' 2>"$out.spark-client.log" | tail -n 1 > "$out.spark-client"
python3 -c 'import json, sys; sys.exit(0 if all(json.load(open(f))["correct"] for f in sys.argv[1:]) else 9)' \
  "$out.dask" "$out.spark" "$out.spark-client"
