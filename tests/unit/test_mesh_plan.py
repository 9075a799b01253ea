import pytest

from netplugins.wireguard.plan import Member, mesh_mtu, peers_config, plan


def members(n, port=51820):
    return [Member(rank=r, hostname=f"node{r + 1:02d}", host_address=f"10.77.0.{11 + r}",
                   public_key=f"{r:064x}", port=port) for r in range(n)]


def test_full_mesh_addresses_pod_ranges_and_peers():
    mesh = plan(members(4))
    assert [mesh[r].mesh_ip for r in range(4)] == ["10.250.0.1", "10.250.0.2", "10.250.0.3", "10.250.0.4"]
    assert [mesh[r].pod_cidr for r in range(4)] == [f"10.244.{r}.0/24" for r in range(4)]
    node2 = mesh[1]
    assert [p.name for p in node2.peers] == ["node01", "node03", "node04"]
    assert node2.peers[0].allowed_ips == ("10.250.0.1/32", "10.244.0.0/24")
    assert node2.peers[2].endpoint == "10.77.0.14:51820"
    assert node2.routes == ("10.244.0.0/24", "10.244.2.0/24", "10.244.3.0/24")
    for r in range(4):  # every node sees every other, never itself
        assert {p.name for p in mesh[r].peers} == {f"node{i + 1:02d}" for i in range(4)} - {mesh[r].name}


def test_plans_agree_with_each_other():
    mesh = plan(list(reversed(members(3))))
    for node in mesh.values():
        for peer in node.peers:
            other = next(n for n in mesh.values() if n.name == peer.name)
            assert peer.allowed_ips[0] == f"{other.mesh_ip}/32"
            assert peer.allowed_ips[1] == other.pod_cidr
            assert peer.endpoint == f"{other.host_address}:{other.listen_port}"


def test_each_node_may_listen_on_a_port_of_its_own():
    ms = [Member(r, f"node{r + 1:02d}", f"10.77.0.{11 + r}", f"{r:064x}", 40000 + r) for r in range(3)]
    mesh = plan(ms)
    assert [(mesh[r].host_address, mesh[r].listen_port) for r in range(3)] == [
        ("10.77.0.11", 40000), ("10.77.0.12", 40001), ("10.77.0.13", 40002)]
    assert [p.endpoint for p in mesh[0].peers] == ["10.77.0.12:40001", "10.77.0.13:40002"]


def test_mtu_from_path_and_override():
    assert mesh_mtu(1500) == 1420
    assert mesh_mtu(9000) == 8920
    assert mesh_mtu(1500, override=1380) == 1380
    with pytest.raises(ValueError, match="below 1280"):
        mesh_mtu(1300)
    with pytest.raises(ValueError, match="does not fit the path MTU 1500 minus the mesh's overhead 80; at most 1420"):
        mesh_mtu(1500, override=4000)
    assert mesh_mtu(9000, override=4000) == 4000
    assert {n.mtu for n in plan(members(2), path_mtu=9000).values()} == {8920}


def test_single_node_has_no_peers():
    only = plan(members(1))[0]
    assert only.peers == () and only.routes == ()


def test_refuses_duplicates():
    ms = members(2)
    with pytest.raises(ValueError, match="duplicate ranks"):
        plan([ms[0], ms[0]])
    clash = [ms[0], Member(1, "node02", "10.77.0.12", ms[0].public_key, 51820)]
    with pytest.raises(ValueError, match="share a public key"):
        plan(clash)


def test_peers_config_text():
    node = plan(members(2))[0]
    text = peers_config(node)
    assert text.startswith("replace_peers=true\n")
    assert f"public_key={1:064x}\nendpoint=10.77.0.12:51820\n" in text
    assert "allowed_ip=10.250.0.2/32\nallowed_ip=10.244.1.0/24\n" in text
    assert "private_key" not in text


def test_the_plain_mesh_plans_like_the_others_and_keeps_its_socket_on_the_host(tmp_path):
    import dataclasses

    import netplugins
    from ksi_multi.errors import KsiError
    from netplugins.plain.apply import PlainMesh

    access = netplugins.NodeAccess(exec=None, pid=1, workdir=tmp_path, runtime=tmp_path, tools={},
                                   secret_file=tmp_path / "secret")
    mesh = netplugins.load("plain", access)
    assert isinstance(mesh, PlainMesh) and not netplugins.forwarded("plain") and netplugins.forwarded("vxlan")
    members = [Member(0, "node01", "10.77.0.11", "", 40000), Member(1, "node02", "10.77.0.12", "", 40001)]
    nodes = mesh.plan(members, path_mtu=1500, mtu=None, mesh_cidr="10.250.0.0/16", pod_subnet="10.244.0.0/16")
    assert nodes[0].mtu == 1500 - 64 and nodes[0].peers[0].endpoint == "10.77.0.12:40001"
    assert nodes[0].peers[0].allowed_ips == ("10.250.0.2/32", "10.244.1.0/24")
    (tmp_path / "ksi-wg").touch()
    mesh = netplugins.load("plain", dataclasses.replace(access, tools={"ksi-wg": tmp_path / "ksi-wg"}))
    with pytest.raises(KsiError, match="needs the job's secret"):
        mesh.prepare()
    (tmp_path / "secret").write_text("s")
    assert mesh.prepare() == {}
