"""federation: liqo on three hosts: a cluster per host, rank 0's (the hub) peered with the other two through
Liqo; work offloaded from the hub runs on all three, and a lost provider leaves the hub serving."""

import json
import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

HOSTS = ("node01", "node02", "node03")
LIQOCTL = f"{IMAGES}/liqo/liqoctl"
SPREAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread, namespace: work}
spec:
  replicas: 3
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule,
         labelSelector: {matchLabels: {app: spread}}}
      containers:
      - name: web
        image: localhost/ksi-multi/toolbox:1
        command: [python3, -c, "import http.server, socket, sys; print('serving', flush=True);
          http.server.HTTPServer(('', 8080), type('H', (http.server.BaseHTTPRequestHandler,),
          {'do_GET': lambda s: (s.send_response(200), s.end_headers(), s.wfile.write(socket.gethostname().encode()))}
          )).serve_forever()"]
---
apiVersion: v1
kind: Service
metadata: {name: spread, namespace: work}
spec: {selector: {app: spread}, ports: [{port: 80, targetPort: 8080}]}
"""
CLIENT = """
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  nodeName: node01
  containers: [{name: c, image: localhost/ksi-multi/toolbox:1, command: [sleep, infinity]}]
"""


@pytest.fixture(scope="module")
def federated(cluster, images):
    job = cluster.sbatch(f"--image-dir {IMAGES} --federation liqo", nodes=3)
    try:
        status = cluster.wait_status(job, "ready", timeout=900)
        yield job, status
    finally:
        cluster.sh(f"scancel {job}", check=False)
    assert cluster.wait_job(job, timeout=120) == "CANCELLED"
    cluster.assert_nothing_left(job, HOSTS, within=60)


def kubectl(cluster, status, args, **kw):
    return cluster.sh(f"kubectl --kubeconfig {status['kubeconfig']} {args}", timeout=kw.pop("timeout", 120), **kw)


def test_the_hub_shows_a_virtual_node_per_peered_cluster(cluster, federated):
    job, status = federated
    nodes = json.loads(kubectl(cluster, status, "get nodes -o json").stdout)["items"]
    kinds = {n["metadata"]["name"]: n["metadata"]["labels"].get("liqo.io/type", "real") for n in nodes}
    assert kinds == {"node01": "real", "node02": "virtual-node", "node03": "virtual-node"}, kinds
    assert sorted(cluster.ready_nodes(status["kubeconfig"])) == [[h, "Ready"] for h in HOSTS]
    for host in HOSTS[1:]:  # each node's own cluster, in its own kubeconfig
        own = cluster.ready_nodes(f"~/.ksi-multi/jobs/{job}/kubeconfig-{host}")
        assert own == [[host, "Ready"]], own
        assert cluster.sh(f"stat -c %a ~/.ksi-multi/jobs/{job}/kubeconfig-{host}").stdout.strip() == "600"
    peerings = cluster.status(job)["peerings"]
    assert {k: v["state"] for k, v in peerings.items()} == {"node02": "ready", "node03": "ready"}, peerings
    shown = cluster.sh(f"ksi-multi status --job {job}").stdout
    assert "peering node02 (Provider): ready" in shown and "peering node03 (Provider): ready" in shown, shown


def test_offloaded_work_runs_on_every_cluster_and_is_reached_from_the_hub(cluster, federated):
    _, status = federated
    kubectl(cluster, status, "create namespace work")
    cluster.sh(f"{LIQOCTL} offload namespace work --kubeconfig {status['kubeconfig']} "
               "--namespace-mapping-strategy EnforceSameName --pod-offloading-strategy LocalAndRemote", timeout=300)
    for manifest in (SPREAD, CLIENT):
        kubectl(cluster, status, f"apply -f - <<'YAML'\n{manifest}\nYAML")
    kubectl(cluster, status, "-n work rollout status deploy/spread --timeout=300s", timeout=330)
    kubectl(cluster, status, "wait --for=condition=Ready pod/client --timeout=120s", timeout=150)
    pods = json.loads(kubectl(cluster, status, "-n work get pods -o json").stdout)["items"]
    placed = {p["spec"]["nodeName"]: p for p in pods}
    assert set(placed) == set(HOSTS), {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}

    for host, pod in placed.items():  # by pod IP, from a pod of the hub's own node
        ip = pod["status"]["podIP"]
        answer = kubectl(cluster, status, f"exec client -- curl -s -m 10 http://{ip}:8080/").stdout
        assert answer == pod["metadata"]["name"], (host, ip, answer)
    names = set()
    for _ in range(30):  # by the Service's DNS name: every replica answers in turn
        names.add(kubectl(cluster, status, "exec client -- curl -s -m 10 http://spread.work.svc.cluster.local/").stdout)
        if len(names) == 3:
            break
    assert len(names) == 3, names

    remote = placed["node02"]["metadata"]["name"]
    assert "serving" in kubectl(cluster, status, f"-n work logs {remote}").stdout
    assert kubectl(cluster, status, f"-n work exec {remote} -- cat /etc/hostname").stdout.strip() == remote


def test_bench_measures_pods_across_clusters_against_the_hosts(cluster, federated):
    """`ksi-multi bench` on a federated job: its pods in an offloaded namespace, the server on a provider."""
    job, status = federated
    out = "/home/ksiuser/bench-liqo"
    cluster.sh(f"ksi-multi bench --job {job} --seconds 1 --round-trips 100 --only pod-pod,pod-service --out {out}",
               timeout=600)
    result = json.loads(cluster.sh(f"cat {out}/*.json").stdout)
    routes = {r["key"]: r for r in result["routes"]}
    assert list(routes) == ["host-host", "pod-pod", "pod-service"], list(routes)
    assert {k: r["errors"] for k, r in routes.items() if r["errors"]} == {}
    for key in ("pod-pod", "pod-service"):
        assert routes[key]["values"]["tcp_1"] > 0 and routes[key]["ratios"]["tcp_1"] > 0, routes[key]
    assert cluster.sh(f"kubectl --kubeconfig {status['kubeconfig']} get namespaces -l app=ksi-bench -o name "
                      "--field-selector status.phase=Active").stdout.strip() == ""


def test_a_lost_provider_shows_and_the_hub_serves_on(cluster, federated):
    job, status = federated
    podman_env = (f"XDG_RUNTIME_DIR=/tmp/ksi-1500-{job} XDG_DATA_HOME=/tmp/ksi-multi-1500/{job}/podman/data "
                  f"XDG_CONFIG_HOME=/tmp/ksi-multi-1500/{job}/podman/config")
    cluster.sh(f"{podman_env} podman kill ksi-{job}-node03", host="node03")
    deadline = time.monotonic() + 240
    while True:
        now = cluster.status(job)
        lost = {n["name"]: n.get("lost") for n in now["nodes"]}
        peering = (now.get("peerings") or {}).get("node03", {})
        virtual = dict(cluster.ready_nodes(status["kubeconfig"])).get("node03")
        if lost.get("node03") and peering.get("state") != "ready" and virtual and virtual.split(",")[0] == "NotReady":
            break
        assert time.monotonic() < deadline, (now, virtual)
        time.sleep(2)
    assert now["state"] == "ready" and not lost["node02"], now
    assert ["node01", "Ready"] in cluster.ready_nodes(status["kubeconfig"])
    assert ["node02", "Ready"] in cluster.ready_nodes(status["kubeconfig"])
    pod = next(p for p in json.loads(kubectl(cluster, status, "-n work get pods -o json").stdout)["items"]
               if p["spec"].get("nodeName") == "node02")
    answer = kubectl(cluster, status, f"exec client -- curl -s -m 10 http://{pod['status']['podIP']}:8080/").stdout
    assert answer, "the pod on node02 no longer answers"
