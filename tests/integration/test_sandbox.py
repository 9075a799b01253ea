"""The sandbox itself: hosts, Slurm, the sandbox user, the delegated cgroups, and clear refusals."""

import pytest

from tests.helpers import NODES, ksi

pytestmark = pytest.mark.sandbox


def test_hosts_have_own_names_addresses_and_slurm(cluster):
    seen = set()
    for h in cluster.plan.compute:
        out = cluster.sh("hostname; ip -4 -o addr show eth0 | awk '{print $4}'; id -un", host=h.name).stdout.split()
        assert out[0] == h.name
        assert out[1].split("/")[0] == h.address
        assert out[2] == "ksiuser"
        seen.add(out[1])
    assert len(seen) == NODES
    sinfo = cluster.sh("sinfo --noheader --Node --format='%N %T'").stdout.split("\n")
    assert sorted(line.split()[0] for line in sinfo if line) == [h.name for h in cluster.plan.compute]


def test_hosts_reach_each_other_by_name(cluster):
    out = cluster.sh("ping -c1 -W2 node02 >/dev/null && echo ok || getent hosts node02", host="node01").stdout
    assert "ok" in out or "10.77.0.12" in out


def test_shared_home_and_node_local_scratch(cluster):
    cluster.sh("echo from-node01 > ~/shared-probe; echo local > /tmp/local-probe", host="node01")
    assert cluster.sh("cat ~/shared-probe", host="node02").stdout.strip() == "from-node01"
    assert cluster.sh("test -e /tmp/local-probe && echo yes || echo no", host="node02").stdout.strip() == "no"
    cluster.sh("rm -f ~/shared-probe /tmp/local-probe", host="node01")


def test_ksi_multi_on_every_host_is_the_wheel_install_not_the_checkout(cluster):
    from ksi_multi.sandbox.cluster import REPO, VENV

    for host in ("login", cluster.plan.compute[-1].name):
        out = cluster.sh("ksi-multi --version && ksi-multi batch-script --path && "
                         f"{VENV}/bin/python -c 'import ksi_multi, netplugins; print(ksi_multi.__file__, "
                         "netplugins.__file__)'", host=host).stdout.split("\n")
        assert out[0].startswith("ksi-multi, version")
        script, *modules = out[-2], *out[-1].split()
        assert all(p.startswith(f"{VENV}/lib/") and not p.startswith(str(REPO)) for p in [script, *modules]), out


def test_delegated_cgroup_for_the_user(cluster):
    out = cluster.sh("mkdir /sys/fs/cgroup/memory/ksi-multi/ksiuser/probe && echo made && "
                     "rmdir /sys/fs/cgroup/memory/ksi-multi/ksiuser/probe", host="node02").stdout
    assert "made" in out
    denied = cluster.sh("mkdir /sys/fs/cgroup/memory/not-mine", host="node02", check=False)
    assert denied.returncode != 0


def test_doctor_passes_as_the_user_and_names_a_missing_tun(cluster):
    ok = cluster.sh("ksi-multi doctor", host="node01")
    assert "all prerequisites met" in ok.stdout
    cluster.sh("chmod 600 /dev/net/tun", host="node02", root=True)
    try:
        bad = cluster.sh("ksi-multi doctor", host="node02", check=False)
    finally:
        cluster.sh("chmod 666 /dev/net/tun", host="node02", root=True)
    assert bad.returncode == 1
    assert "FAIL  /dev/net/tun" in bad.stdout
    assert "/dev/net/tun: ask an admin" in bad.stdout
    assert "prerequisite(s) missing: /dev/net/tun" in bad.stderr
    # (the node image cache that earlier jobs left on the host is no leftover of the doctor's)
    leftover = cluster.sh("pgrep -u ksiuser -a catatonit; ls /tmp | grep -E 'ksi-multi|storage-run' | "
                          "grep -vx ksi-multi-1500; ls -A /tmp/ksi-multi-1500 2>/dev/null | grep -vx image-cache",
                          host="node02", check=False).stdout.strip()
    assert leftover == ""


def test_up_twice_is_refused_clearly(cluster):
    again = ksi("sandbox", "up", "-N", "2", "--name", cluster.box.name, check=False)
    assert again.returncode == 1
    assert "already up" in again.stderr and "sandbox down" in again.stderr


def test_unknown_host_is_named(cluster):
    bad = ksi("sandbox", "shell", "--name", cluster.box.name, "--node", "node99", "--", "true", check=False)
    assert bad.returncode == 1
    assert "no host named 'node99'" in bad.stderr
