import dataclasses

import pytest

from ksi_multi.errors import KsiError
from ksi_multi.hostlist import expand
from ksi_multi.image import debian
from ksi_multi.sandbox import rootfs
from ksi_multi.sandbox.plan import DOMAIN, SandboxPlan, hosts_file, resolv_conf, slurm_conf


def test_hosts_and_addresses():
    plan = SandboxPlan(nodes=4)
    assert [h.name for h in plan.hosts] == ["login", "node01", "node02", "node03", "node04"]
    addresses = [h.address for h in plan.hosts]
    assert len(set(addresses)) == 5
    assert plan.login.address == "10.77.0.2"
    assert expand(plan.nodelist) == [h.name for h in plan.compute]
    assert plan.netns(plan.compute[0]) == "ksi-ksi-node01"


def test_wide_clusters_keep_names_sortable():
    plan = SandboxPlan(nodes=12)
    assert plan.compute[0].name == "node01" and plan.compute[-1].name == "node12"
    assert plan.nodelist == "node[01-12]"
    assert SandboxPlan(nodes=1).nodelist == "node01"


def test_every_host_is_in_every_hosts_file_and_slurm_conf():
    plan = SandboxPlan(nodes=3, subnet="10.99.0.0/24")
    hosts = hosts_file(plan)
    conf = slurm_conf(plan, kill_wait=7)
    for h in plan.hosts:
        assert f"{h.address} {h.name} {h.name}.{DOMAIN}\n" in hosts
    assert resolv_conf(plan) == f"nameserver {plan.login.address}\nsearch {DOMAIN}\n"  # the login host resolves
    node_lines = [line for line in conf.splitlines() if line.startswith("NodeName=")]
    assert [line.split()[0] for line in node_lines] == [f"NodeName={h.name}" for h in plan.compute]
    assert f"SlurmctldHost=login({plan.login.address})" in conf
    assert "KillWait=7" in conf
    assert "ProctrackType=proctrack/linuxproc" in conf


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"nodes": 0}, "out of range"), ({"nodes": 65}, "out of range"), ({"name": "bad-name"}, "letters or digits"),
    ({"subnet": "10.0.0.0/29"}, "too small"), ({"mtu": 100}, "MTU"),
])
def test_invalid_plans(kwargs, words):
    with pytest.raises(KsiError, match=words):
        SandboxPlan(**kwargs)


def test_rootfs_without_a_bootstrapper(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KsiError, match="neither mmdebstrap nor debootstrap") as err:
        debian.builder(rootfs.SPEC)
    assert "apt-get install" in err.value.fix


def test_rootfs_cache_key_follows_packages_and_revision(tmp_path):
    base = rootfs.SPEC.path(tmp_path)
    assert dataclasses.replace(rootfs.SPEC, packages=(*rootfs.PACKAGES, "htop")).path(tmp_path) != base
    assert dataclasses.replace(rootfs.SPEC, revision=99).path(tmp_path) != base
    assert dataclasses.replace(rootfs.SPEC, packages=tuple(reversed(rootfs.PACKAGES))).path(tmp_path) == base
