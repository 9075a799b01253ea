import errno
import json
import os
import socket
from pathlib import Path

from ksi_multi import doctor, ports
from ksi_multi.cgroups import V1
from ksi_multi.scratch import fstype_of

INFO_ROOTLESS = json.dumps({"host": {"security": {"rootless": True}}})


def test_podman_checks():
    assert doctor.check_podman("podman version 5.4.2", INFO_ROOTLESS).ok
    missing = doctor.check_podman(None, None)
    assert not missing.ok and "apt install podman" in missing.fix
    old = doctor.check_podman("podman version 4.3.1", INFO_ROOTLESS)
    assert not old.ok and "too old" in old.detail
    broken = doctor.check_podman("podman version 5.0.0", None, "cannot clone: Operation not permitted")
    assert not broken.ok and "Operation not permitted" in broken.detail
    as_root = doctor.check_podman("podman version 5.0.0", json.dumps({"host": {"security": {"rootless": False}}}))
    assert not as_root.ok and "your own user" in as_root.fix


def test_network_helper_blocking_only_when_selected():
    assert doctor.check_net_helper("pasta", False, selected=True).blocking is True
    assert doctor.check_net_helper("slirp4netns", False, selected=True).blocking is True
    unused = doctor.check_net_helper("slirp4netns", False, selected=False)
    assert not unused.ok and not unused.blocking and unused.status == "warn"
    assert "apt install passt" in doctor.check_net_helper("pasta", False, selected=True).fix


def test_subids():
    text = "alice:100000:65536\nbob:200000:1000\n1500:300000:65536\n# junk\n"
    assert doctor.subid_count(text, "alice", 1000) == 65536
    assert doctor.subid_count(text, "carol", 1500) == 65536
    assert doctor.check_subids("uid", text, "alice", 1000).ok
    short = doctor.check_subids("gid", text, "bob", 1001)
    assert not short.ok and "usermod --add-subgids" in short.fix
    assert not doctor.check_subids("uid", None, "dave", 1002).ok


def test_user_namespaces():
    assert doctor.check_userns("15000\n", None, None).ok
    assert "max_user_namespaces is 0" in doctor.check_userns("0\n", None, None).detail
    assert not doctor.check_userns("15000", "0", None).ok
    assert "AppArmor" in doctor.check_userns("15000", "1", "1").detail


def test_tun():
    assert doctor.check_tun(None).ok
    r = doctor.check_tun(errno.EACCES)
    assert not r.ok and "Permission denied" in r.detail and "0666" in r.fix
    assert "No such file" in doctor.check_tun(errno.ENOENT).detail


def test_ports_with_real_sockets():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        err = ports.bind_error("tcp", "127.0.0.1", port)
        assert err == errno.EADDRINUSE
        r = doctor.check_port("tcp", port, "api_server_port", err)
        assert not r.ok and "in use" in r.detail and "api_server_port" in r.fix
    assert ports.bind_error("tcp", "127.0.0.1", port) is None


def test_tcp_port_with_only_time_wait_connections_is_free():
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the server side closes first: its socket stays in TIME_WAIT
    client.close()
    server.close()
    assert ports.bind_error("tcp", "127.0.0.1", port) is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        assert ports.bind_error("udp", "127.0.0.1", udp.getsockname()[1]) == errno.EADDRINUSE


def _cgroup_tree(root: Path, rel: str, writable: bool) -> None:
    for c in V1:
        d = root / c / rel
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
        if not writable:
            os.chmod(d / "cgroup.procs", 0o444)


def test_v1_delegation_found_and_missing(tmp_path):
    _cgroup_tree(tmp_path / "good", "ksi-multi/alice", writable=True)
    version, rel, _ = doctor.delegated_cgroup("auto", "alice", tmp_path / "good")
    assert (version, rel) == (1, "ksi-multi/alice")
    version, rel, tried = doctor.delegated_cgroup("auto", "bob", tmp_path / "good")
    assert rel is None and any("ksi-multi/bob" in t for t in tried)
    r = doctor.check_cgroups(1, None, tried)
    assert not r.ok and "docs/admins.md" in r.fix


def test_v1_delegation_needs_every_hierarchy(tmp_path):
    _cgroup_tree(tmp_path, "site/alice", writable=True)
    assert doctor.delegated_cgroup("site/alice", "alice", tmp_path)[1] == "site/alice"
    (tmp_path / "memory/site/alice/cgroup.procs").unlink()
    (tmp_path / "memory/site/alice").rmdir()
    version, rel, tried = doctor.delegated_cgroup("site/alice", "alice", tmp_path)
    assert rel is None and str(tmp_path / "memory/site/alice") in tried


def test_v2_delegation(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    d = tmp_path / "user.slice/ksi"
    d.mkdir(parents=True)
    (d / "cgroup.procs").write_text("")
    assert doctor.delegated_cgroup("user.slice/ksi", "alice", tmp_path)[:2] == (2, "user.slice/ksi")
    assert doctor.delegated_cgroup("elsewhere", "alice", tmp_path)[:2] == (2, None)


MOUNTINFO = """\
22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
30 22 0:40 / /home rw,relatime - nfs4 server:/home rw
31 22 0:41 / /scratch rw - lustre 10.0.0.1@tcp:/fs rw
32 31 0:42 / /scratch/local rw - xfs /dev/nvme0 rw
33 22 0:43 / /with\\040space rw - tmpfs tmpfs rw
"""


def test_fstype_of_longest_mount_prefix():
    assert fstype_of("/home/alice", MOUNTINFO) == "nfs4"
    assert fstype_of("/tmp", MOUNTINFO) == "ext4"
    assert fstype_of("/scratch/x", MOUNTINFO) == "lustre"
    assert fstype_of("/scratch/local/job", MOUNTINFO) == "xfs"
    assert fstype_of("/homework", MOUNTINFO) == "ext4"
    assert fstype_of("/with space/a", MOUNTINFO) == "tmpfs"


def test_scratch_results(tmp_path):
    assert doctor.check_scratch(tmp_path, "ext4", "", 100.0).ok
    small = doctor.check_scratch(tmp_path, "ext4", "", 2.0)
    assert not small.ok and not small.blocking
    shared = doctor.check_scratch(tmp_path, None, "scratch /home is on nfs4, a shared filesystem", None)
    assert not shared.ok and shared.blocking


def test_table_lists_fixes_for_failures():
    lines = []
    doctor.table([doctor.check_tun(None), doctor.check_tun(errno.EACCES)], lines.append)
    assert lines[0].split()[0] == "ok"
    assert lines[1].split()[0] == "FAIL"
    assert lines[2].strip().startswith("/dev/net/tun: ask an admin")


def test_mesh_mtu_must_fit_the_path():
    assert doctor.check_mesh_mtu("wireguard", 0, 1500).ok
    assert "1420 (path MTU 1500 minus wireguard's 80)" in doctor.check_mesh_mtu("wireguard", 0, 1500).detail
    assert doctor.check_mesh_mtu("vxlan", 1450, 1500).ok
    bad = doctor.check_mesh_mtu("wireguard", 4000, 1500)
    assert not bad.ok and bad.blocking and "set mesh_mtu to at most 1420" in bad.fix
    assert doctor.check_mesh_mtu("wireguard", 4000, 9000).ok


def test_image_build_checks_name_the_missing_tool_and_the_fix():
    assert doctor.check_go((1, 26)).ok
    old = doctor.check_go((1, 22))
    assert not old.ok and "1.22 is too old" in old.detail and "Go >= 1.24" in old.fix
    assert "not installed" in doctor.check_go(None).detail
    assert doctor.check_c_compiler(True, True).ok
    assert doctor.check_c_compiler(True, False).fix == "apt install libc6-dev"
    assert "gcc is not installed" in doctor.check_c_compiler(False, False).detail
    assert doctor.check_bootstrap(False, True, root=True, newuidmap=False, subuids=0).ok
    as_user = doctor.check_bootstrap(False, True, root=False, newuidmap=True, subuids=65536)
    assert not as_user.ok and "apt install mmdebstrap" in as_user.fix
    assert "newuidmap" in doctor.check_bootstrap(True, False, root=False, newuidmap=False, subuids=65536).detail
    few = doctor.check_bootstrap(True, False, root=False, newuidmap=True, subuids=1000)
    assert not few.ok and "1000 granted" in few.detail
    assert doctor.check_bootstrap(True, False, root=False, newuidmap=True, subuids=65536).ok


def test_port_zero_is_chosen_per_job_and_the_chosen_port_is_free_on_that_address():
    r = doctor.check_port("udp", 0, "mesh_port", None)
    assert r.ok and "chosen per job" in r.detail
    for proto in ("tcp", "udp"):
        port = ports.free(proto, "127.0.0.1")
        assert 1024 <= port <= 65535
        assert ports.bind_error(proto, "127.0.0.1", port) is None
        assert ports.chosen(port, proto, "127.0.0.1") == port  # a configured port is kept as it is
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        assert all(ports.free("udp", "127.0.0.1") != taken for _ in range(50))
