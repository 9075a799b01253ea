#!/bin/bash
# Run on the sandbox login host as the user: one pod pinned to every node; every pod fetches from every
# other pod by IP, and from a Service by DNS name. Prints "ok <from>-><to>" per success, and
# "src <from>-><to>" where the receiving pod saw the sender's own pod address (no masquerade in between).
set -u
export KUBECONFIG=$1
ns=xnode-$RANDOM
k() { kubectl -n "$ns" "$@"; }
kubectl create namespace "$ns" >/dev/null
trap 'kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1' EXIT
nodes=$(kubectl get nodes -o jsonpath='{.items[*].metadata.name}')
for n in $nodes; do
  k run "p-$n" --image=localhost/ksi-multi/toolbox:1 --restart=Never --labels=app=xnode \
    --overrides="{\"spec\":{\"nodeName\":\"$n\",\"tolerations\":[{\"operator\":\"Exists\"}]}}" \
    --command -- python3 -m http.server 8080 >/dev/null
done
k wait --for=condition=ready pod -l app=xnode --timeout=180s >/dev/null
k expose pod "p-${nodes%% *}" --port 80 --target-port 8080 --name first >/dev/null
for from in $nodes; do
  for to in $nodes; do
    [ "$from" = "$to" ] && continue
    ip=$(k get pod "p-$to" -o jsonpath='{.status.podIP}')
    [ "$(k exec "p-$from" -- curl -s -m 10 --retry 2 --retry-all-errors -o /dev/null -w '%{http_code}' "http://$ip:8080/")" = 200 ] && echo "ok $from->$to"
  done
  [ "$(k exec "p-$from" -- curl -s -m 10 --retry 2 --retry-all-errors -o /dev/null -w '%{http_code}' "http://first.$ns.svc.cluster.local/")" = 200 ] \
    && echo "ok $from->service"
done
for from in $nodes; do
  src=$(k get pod "p-$from" -o jsonpath='{.status.podIP}')
  for to in $nodes; do
    [ "$from" = "$to" ] && continue
    k logs "p-$to" 2>&1 | grep -q "^$src - " && echo "src $from->$to"
  done
done
