#!/bin/bash
# Run on the sandbox login host as the user: plain kubectl against a ksi-multi job's kubeconfig.
# Prints one "ok <check>" line per check that passed.
set -u
export KUBECONFIG=$1
ns=smoke-$RANDOM
k() { kubectl -n "$ns" "$@"; }
kubectl create namespace "$ns" >/dev/null
trap 'kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1' EXIT
img=localhost/ksi-multi/toolbox:1

k create deployment web --image=$img --replicas=2 -- python3 -m http.server 8080 >/dev/null
k expose deployment web --port 80 --target-port 8080 >/dev/null
k wait --for=condition=available deploy/web --timeout=120s >/dev/null && echo "ok deployment"
k run client --image=$img --restart=Never --command -- sleep 600 >/dev/null
k wait --for=condition=ready pod/client --timeout=120s >/dev/null
code=$(k exec client -- curl -s -m 10 -o /dev/null -w '%{http_code}' "http://web.$ns.svc.cluster.local/")
[ "$code" = 200 ] && echo "ok service-dns"
[ "$(k exec client -- cat /etc/hostname)" = client ] && echo "ok exec"
k logs -l app=web 2>/dev/null | grep -q 'GET / HTTP' && echo "ok logs"
k port-forward svc/web 18080:80 >/dev/null 2>&1 &
pf=$!
for _ in $(seq 50); do curl -s -m 2 -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.2; done
[ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:18080/)" = 200 ] && echo "ok port-forward"
kill $pf
cat <<YAML | k apply -f - >/dev/null
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: write}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: w, image: $img, command: [sh, -c, "echo done > /data/out && cat /data/out"],
         volumeMounts: [{name: d, mountPath: /data}]}
      volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
YAML
k wait --for=jsonpath='{.status.phase}'=Bound pvc/data --timeout=120s >/dev/null && echo "ok pvc-bound"
k wait --for=condition=complete job/write --timeout=120s >/dev/null && echo "ok job-complete"
[ "$(k logs job/write)" = done ] && echo "ok job-wrote-volume"
