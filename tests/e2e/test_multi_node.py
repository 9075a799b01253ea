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
    assert passed == {f"{a}->{b}" for a in names for b in names if a != b} | {f"{a}->service" for a in names}
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


def test_scancel_cleans_every_host(cluster, job):
    cluster.sh(f"scancel {job}")
    assert cluster.wait_job(job, timeout=60) == "CANCELLED"
    deadline = time.monotonic() + 35  # KillWait is 30 s, as Slurm's default
    hosts = [h.name for h in cluster.plan.compute]
    while any(cluster.leftovers(h, job) for h in hosts) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {h: cluster.leftovers(h, job) for h in hosts} == {h: [] for h in hosts}
    assert not cluster.job_file(job, "join.json")
