"""The other mesh plugins on two hosts: wireguard-forwarded (all of WireGuard inside the node, UDP forwarded
by pasta), vxlan (kernel overlay inside the node, UDP forwarded) and plain (ksi-wg plain: unencrypted, its
UDP socket on the host). Same cluster guarantees as the default."""

import time

import pytest

from ksi_multi.sandbox.cluster import REPO
from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox


# A site's own address ranges instead of the defaults (vxlan's job uses them).
SITE = "--pod-subnet 172.20.0.0/16 --service-subnet 172.21.0.0/20 --mesh-subnet 172.22.0.0/24 --node-subnet 192.168.77.0/24"


@pytest.mark.parametrize(("mesh", "ranges", "mesh_ips"), [
    ("wireguard-forwarded", "", ["10.250.0.1", "10.250.0.2"]),
    ("vxlan", SITE, ["172.22.0.1", "172.22.0.2"]),
    ("plain", "", ["10.250.0.1", "10.250.0.2"]),
], ids=["wireguard-forwarded", "vxlan", "plain"])
def test_plugin_joins_two_hosts_into_one_pod_network(cluster, images, mesh, ranges, mesh_ips):
    job = cluster.sbatch(f"--image-dir {IMAGES} --mesh {mesh} {ranges}", nodes=2)
    try:
        status = cluster.wait_status(job, "ready", timeout=600)
        assert [n["mesh_ip"] for n in status["nodes"]] == mesh_ips
        out = cluster.sh(f"bash {REPO}/ksi_multi/sandbox/xnode.sh {status['kubeconfig']}", timeout=600).stdout.split()
        assert {f"{w} {out[i + 1]}" for i, w in enumerate(out) if w in ("ok", "src")} == {
            "ok node01->node02", "ok node02->node01", "ok node01->service", "ok node02->service",
            "src node01->node02", "src node02->node01"}
        port = status["nodes"][1]["mesh_port"]
        holder = cluster.sh(f"ss -Hunlp 'sport = :{port}'", host="node02").stdout
        if mesh == "plain":  # a host socket of ksi-wg's, on the host's cluster address
            assert "ksi-wg" in holder and f"10.77.0.12:{port} " in holder and "pasta" not in holder, holder
            peers = cluster.status(job)["mesh"]
            assert set(peers) == {"node02"} and peers["node02"]["rx_bytes"] > 0, peers
        else:  # the network helper's, which forwards it into the node
            assert "pasta" in holder and "ksi-wg" not in holder, holder
        assert f"mesh: {mesh} {mesh_ips[1]}" in cluster.job_file(job, "agent-node02.log")
        if ranges:  # pods and Services in the site's ranges
            kubeconfig = status["kubeconfig"]
            pods = cluster.sh(f"kubectl --kubeconfig {kubeconfig} get pods -A -o jsonpath='{{.items[*].status.podIP}}'"
                              ).stdout.split()
            assert any(ip.startswith("172.20.") for ip in pods), pods
            dns = cluster.sh(f"kubectl --kubeconfig {kubeconfig} -n kube-system get svc kube-dns "
                             "-o jsonpath='{.spec.clusterIP}'").stdout
            assert dns.startswith("172.21."), dns
    finally:
        cluster.sh(f"scancel {job}", check=False)
    assert cluster.wait_job(job, timeout=60) == "CANCELLED"
    deadline = time.monotonic() + 35
    while any(cluster.leftovers(h, job) for h in ("node01", "node02")) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert cluster.leftovers("node01", job) == [] and cluster.leftovers("node02", job) == []
