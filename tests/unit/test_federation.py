import json

import pytest

from ksi_multi import federation
from ksi_multi.errors import KsiError
from ksi_multi.ranges import Ranges


def test_every_cluster_gets_its_own_slice_of_the_job_ranges():
    ranges = Ranges()
    got = [federation.cluster_ranges(rank, ranges) for rank in range(3)]
    assert [c.pods for c in got] == ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]
    assert [c.services for c in got] == ["10.96.0.0/24", "10.96.1.0/24", "10.96.2.0/24"]
    assert got[1].dns == "10.96.1.10"
    assert federation.max_clusters(ranges) == 256


def test_a_service_range_too_small_for_the_nodes_is_refused_with_the_fix():
    ranges = Ranges(services="10.96.0.0/23")
    federation.cluster_ranges(1, ranges)
    with pytest.raises(KsiError, match="holds 2 clusters") as err:
        federation.cluster_ranges(2, ranges)
    assert "service_subnet" in err.value.fix


@pytest.mark.parametrize("host, expected", [("node01", "node01"), ("Node_7.cluster.example", "node-7-cluster-example"),
                                            ("--", "node"), ("a" * 80, "a" * 63)])
def test_cluster_ids_are_dns_labels(host, expected):
    assert federation.cluster_id(host) == expected
    assert federation.kubeconfig_name(host) == f"kubeconfig-{expected}"


def _build(tmp_path, complete=True):
    liqo = tmp_path / "liqo"
    (liqo / "chart").mkdir(parents=True)
    (liqo / "chart" / "Chart.yaml").write_text("name: liqo\n")
    (liqo / "liqoctl").write_text("")
    if complete:
        (liqo / "liqo-v1.0.1.tar").write_text("")
    images = {"liqo-controller-manager": "localhost/ksi-multi/liqo/liqo-controller-manager:v1.0.1",
              "virtual-kubelet": "localhost/ksi-multi/liqo/virtual-kubelet:v1.0.1"}
    (tmp_path / "images.json").write_text(json.dumps({"liqo": {
        "version": "v1.0.1", "liqoctl": "liqo/liqoctl", "chart": "liqo/chart", "archive": "liqo/liqo-v1.0.1.tar",
        "images": images}}))


def test_liqoctl_installs_this_build_without_liqo_networking(tmp_path):
    _build(tmp_path)
    tools = federation.LiqoTools.find(tmp_path)
    args = tools.install_args(tmp_path / "kc", "node02", federation.cluster_ranges(2, Ranges()),
                              "https://10.250.0.3:6443", 600)
    assert args[:2] == [str(tmp_path / "liqo/liqoctl"), "install"]
    def flag(name):
        return args[args.index(name) + 1]

    assert flag("--cluster-id") == "node02" and flag("--version") == "v1.0.1"
    assert flag("--api-server-url") == "https://10.250.0.3:6443"
    assert flag("--local-chart-path") == str(tmp_path / "liqo/chart") and flag("--kubeconfig") == str(tmp_path / "kc")
    assert flag("--pod-cidr") == "10.244.2.0/24" and flag("--service-cidr") == "10.96.2.0/24"
    sets = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert "networking.enabled=false" in sets and "telemetry.enabled=false" in sets
    assert "controllerManager.image.name=localhost/ksi-multi/liqo/liqo-controller-manager" in sets
    assert "virtualKubelet.image.name=localhost/ksi-multi/liqo/virtual-kubelet" in sets
    peer = tools.peer_args(tmp_path / "hub", tmp_path / "provider", 300)
    assert "--networking-disabled" in peer and peer[peer.index("--remote-kubeconfig") + 1] == str(tmp_path / "provider")


def test_a_missing_or_partial_liqo_build_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(KsiError, match="has no Liqo build") as err:
        federation.LiqoTools.find(tmp_path)
    assert "image build --liqo" in err.value.fix
    _build(tmp_path, complete=False)
    with pytest.raises(KsiError, match="incomplete: .*liqo-v1.0.1.tar missing"):
        federation.LiqoTools.find(tmp_path)


def test_a_peering_is_ready_only_when_every_condition_of_its_enabled_modules_is():
    fc = {"metadata": {"name": "node02"}, "spec": {"clusterID": "node02"},
          "status": {"role": "Provider",
                     "conditions": [{"type": "APIServerStatus", "status": "Established"}],
                     "modules": {"networking": {"enabled": False, "conditions": [{"type": "NetworkConnectionStatus",
                                                                                  "status": "NotReady"}]},
                                 "authentication": {"enabled": True, "conditions": [
                                     {"type": "AuthIdentityControlPlaneStatus", "status": "Established"}]},
                                 "offloading": {"enabled": True, "conditions": [
                                     {"type": "OffloadingVirtualNodeStatus", "status": "Ready"}]}}}}
    name, fields = federation.peering(fc)
    assert name == "node02" and fields["state"] == "ready" and fields["role"] == "Provider"
    assert "NetworkConnectionStatus" not in fields
    fc["status"]["modules"]["offloading"]["conditions"][0]["status"] = "NotReady"
    assert federation.peering(fc)[1]["state"] == "OffloadingVirtualNodeStatus: NotReady"
    assert federation.peering({"metadata": {"name": "x"}}) == ("x", {"state": "pending", "role": "Unknown"})


def test_the_bench_offloads_its_namespace_as_liqoctl_offload_namespace_does():
    nso = federation.namespace_offloading("ksi-bench-abc")
    assert nso["apiVersion"] == "offloading.liqo.io/v1beta1" and nso["kind"] == "NamespaceOffloading"
    assert nso["metadata"] == {"name": "offloading", "namespace": "ksi-bench-abc"}
    assert nso["spec"]["namespaceMappingStrategy"] == "EnforceSameName"
    assert nso["spec"]["podOffloadingStrategy"] == "LocalAndRemote"
