"""`sbatch -N 4`: one cluster across four hosts over the WireGuard mesh, used from the login host."""

import json
import time

import pytest

from ksi_multi.sandbox.cluster import REPO
from tests.helpers import IMAGES, NODES

pytestmark = pytest.mark.sandbox

HERE = f"{REPO}/tests/e2e"


@pytest.fixture(scope="module")
def job(cluster, images):
    job_id = cluster.sbatch(f"--image-dir {IMAGES}", nodes=NODES)
    cluster.wait_status(job_id, "ready", timeout=900)
    yield job_id
    cluster.sh(f"scancel {job_id}", check=False)


def _wg_counters(cluster, job) -> dict[str, int]:
    out = {}
    for h in cluster.plan.compute:
        show = json.loads(cluster.sh(f"{IMAGES}/ksi-wg show --uapi /tmp/ksi-1500-{job}/wg.sock", host=h.name).stdout)
        out[h.name] = sum(p["rx_bytes"] + p["tx_bytes"] for p in show["peers"])
    return out


def test_every_node_ready_on_its_mesh_address(cluster, job):
    status = cluster.status(job)
    assert [n["ready"] for n in status["nodes"]] == [True] * NODES
    mesh = {n["name"]: n["mesh_ip"] for n in status["nodes"]}
    assert sorted(mesh.values()) == [f"10.250.0.{i}" for i in range(1, NODES + 1)]
    wide = cluster.sh(f"KUBECONFIG={status['kubeconfig']} kubectl get nodes --no-headers "
                      "-o custom-columns=NAME:.metadata.name,IP:.status.addresses[0].address").stdout
    assert dict(line.split() for line in wide.splitlines()) == mesh


def test_pods_reach_each_other_across_nodes_over_the_mesh(cluster, job):
    kubeconfig = cluster.status(job)["kubeconfig"]
    before = _wg_counters(cluster, job)
    out = cluster.sh(f"bash {REPO}/ksi_multi/sandbox/xnode.sh {kubeconfig}", timeout=600).stdout.split()
    passed = {out[i + 1] for i, word in enumerate(out) if word == "ok"}
    names = [h.name for h in cluster.plan.compute]
    pairs = {f"{a}->{b}" for a in names for b in names if a != b}
    assert passed == pairs | {f"{a}->service" for a in names}
    assert {out[i + 1] for i, word in enumerate(out) if word == "src"} == pairs  # pod addresses kept across nodes
    after = _wg_counters(cluster, job)
    assert all(after[n] > before[n] for n in names), (before, after)


def test_kubectl_exec_logs_port_forward_for_pods_on_workers(cluster, job):
    kubeconfig = cluster.status(job)["kubeconfig"]
    out = cluster.sh(f"bash {HERE}/smoke.sh {kubeconfig}", timeout=600).stdout.split()
    passed = {out[i + 1] for i, word in enumerate(out) if word == "ok"}
    assert {"deployment", "service-dns", "exec", "logs", "port-forward"} <= passed
    placed = cluster.sh(f"KUBECONFIG={kubeconfig} kubectl get pods -A -o wide --no-headers").stdout
    assert any(h.name in placed for h in cluster.plan.compute[1:])


def test_status_shows_handshakes_with_every_peer(cluster, job):
    deadline = time.monotonic() + 15
    while "mesh" not in (status := cluster.status(job)) and time.monotonic() < deadline:
        time.sleep(1)
    peers = status["mesh"]
    assert set(peers) == {h.name for h in cluster.plan.compute[1:]}
    assert all(p["latest_handshake"] > 0 and p["rx_bytes"] > 0 for p in peers.values())


SPREAD = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread, namespace: default}
spec:
  replicas: 6
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      topologySpreadConstraints:
      - {maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway,
         labelSelector: {matchLabels: {app: spread}}}
      containers:
      - {name: main, image: localhost/ksi-multi/toolbox:1, command: [sleep, infinity]}
"""


def _placement(cluster, kubectl) -> list[tuple[str, str]]:
    out = cluster.sh(f"{kubectl} get pods -l app=spread --no-headers "
                     "-o custom-columns=PHASE:.status.phase,NODE:.spec.nodeName,DEL:.metadata.deletionTimestamp").stdout
    return [(phase, host) for phase, host, deleting in (line.split() for line in out.splitlines()) if deleting == "<none>"]


def test_a_lost_worker_leaves_the_others_serving_and_its_pods_move(cluster, job):
    kubectl = f"KUBECONFIG={cluster.status(job)['kubeconfig']} kubectl -n default"
    victim = cluster.plan.compute[-1].name
    survivors = [h.name for h in cluster.plan.compute if h.name != victim]
    cluster.sh(f"{kubectl} apply -f - <<'YAML'\n{SPREAD}\nYAML")
    cluster.sh(f"{kubectl} rollout status deploy/spread --timeout=180s", timeout=200)
    assert victim in {host for _, host in _placement(cluster, kubectl)}

    podman_env = (f"XDG_RUNTIME_DIR=/tmp/ksi-1500-{job} XDG_DATA_HOME=/tmp/ksi-multi-1500/{job}/podman/data "
                  f"XDG_CONFIG_HOME=/tmp/ksi-multi-1500/{job}/podman/config")
    cluster.sh(f"{podman_env} podman kill ksi-{job}-{victim}", host=victim)

    deadline = time.monotonic() + 60
    while not (lost := {n["name"]: n["lost"] for n in cluster.status(job)["nodes"]})[victim]:
        assert time.monotonic() < deadline, cluster.job_log(job)
        time.sleep(1)
    assert "its agent reports" in lost[victim] and [lost[n] for n in survivors] == [None] * len(survivors)
    assert "LOST" in cluster.sh(f"ksi-multi status --job {job}").stdout

    deadline = time.monotonic() + 180
    while not ((pods := _placement(cluster, kubectl)) and len(pods) == 6
               and all(phase == "Running" and host in survivors for phase, host in pods)):
        assert time.monotonic() < deadline, pods
        time.sleep(2)
    nodes = cluster.sh(f"{kubectl} get nodes --no-headers").stdout
    assert all(f"{name} Ready" in " ".join(nodes.split()) for name in survivors), nodes
    status = cluster.status(job)
    assert status["state"] == "ready" and all(n["ready"] for n in status["nodes"] if n["name"] in survivors)
    # The lost worker's agent stays in the job (so the step goes on) with its own part already torn down.
    assert victim in cluster.agent_processes()
    left = cluster.sh(f"pgrep -u ksiuser -a -f '[c]onmon|[p]asta|[k]si-wg' || true; "
                      f"ls -d /tmp/ksi-multi-1500/{job} /tmp/ksi-1500-{job} 2>/dev/null || true", host=victim).stdout
    assert left.strip() == ""


def test_scancel_cleans_every_host(cluster, job):
    cluster.sh(f"scancel {job}")
    assert cluster.wait_job(job, timeout=60) == "CANCELLED"
    deadline = time.monotonic() + 35  # KillWait is 30 s, as Slurm's default
    hosts = [h.name for h in cluster.plan.compute]
    while any(cluster.leftovers(h, job) for h in hosts) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {h: cluster.leftovers(h, job) for h in hosts} == {h: [] for h in hosts}
    assert not cluster.job_file(job, "join.json")
