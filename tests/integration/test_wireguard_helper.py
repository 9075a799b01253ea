"""The mesh's data path: ksi-wg on two virtual hosts, as the unprivileged user.

Each host gets a user-owned network namespace (what a rootless node container has); ksi-wg creates the
TUN inside it and runs WireGuard in the host's namespace, so the UDP socket is an ordinary host socket.
"""

import json

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

D = "/tmp/ksi-wgtest"
PEERS = {"node01": "10.250.0.1", "node02": "10.250.0.2"}


def test_tunnel_between_two_hosts_carries_traffic(cluster, images):
    wg = f"{IMAGES}/ksi-wg"
    address = {h.name: h.address for h in cluster.plan.compute}
    pub = {}
    try:
        for host in PEERS:
            cluster.sh(f"mkdir -p {D} && cd {D} && (setsid unshare --user --map-root-user --net "
                       "sh -c 'ip link set lo up; exec sleep 300' >/dev/null 2>&1 </dev/null & echo $! > inner.pid) && "
                       f"umask 077 && {wg} genkey > key && {wg} pubkey < key > pub", host=host)
            pub[host] = cluster.sh(f"cat {D}/pub", host=host).stdout.strip()
        for host, mesh_ip in PEERS.items():
            other = next(h for h in PEERS if h != host)
            cfg = (f"public_key={pub[other]}\nendpoint={address[other]}:51820\nreplace_allowed_ips=true\n"
                   f"allowed_ip={PEERS[other]}/32\npersistent_keepalive_interval=5\n")
            cluster.sh(f"cat > {D}/cfg <<'EOF'\n{cfg}EOF\n"
                       f"cd {D} || exit 1; setsid {wg} up --netns-pid $(cat inner.pid) --name wg0 --mtu 1420 --addr {mesh_ip}/24 "
                       f"--uapi {D}/wg.sock --listen-port 51820 --listen-address {address[host]} "
                       "--private-key-file key --config cfg "
                       ">up.log 2>&1 </dev/null &", host=host)
        for host in PEERS:
            cluster.wait_socket(host, f"{D}/wg.sock", f"{D}/up.log")
        inner = f"nsenter --preserve-credentials -U -n -t $(cat {D}/inner.pid)"
        ping = cluster.sh(f"{inner} ping -c 3 -W 3 {PEERS['node02']}", host="node01", check=False)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert " 0% packet loss" in ping.stdout
        # a TCP transfer of many super-packets, checked end to end: the checksums the peers leave to the
        # kernels at both ends (partial checksums) come out right
        cluster.sh(f"{inner} sh -c 'head -c 20000000 /dev/urandom > /tmp/ksi-wg.bin'", host="node02")
        cluster.sh(f"cd {D} && (setsid {inner} sh -c 'python3 -m http.server -d /tmp 8080 -b {PEERS['node02']}' "
                   ">http.log 2>&1 </dev/null &)", host="node02")
        got = cluster.sh(f"{inner} sh -c 'curl -s --retry 5 --retry-connrefused http://{PEERS['node02']}:8080/"
                         "ksi-wg.bin | sha256sum'", host="node01").stdout.split()[0]
        assert got == cluster.sh(f"{inner} sha256sum /tmp/ksi-wg.bin", host="node02").stdout.split()[0]
        assert "partial checksums, vector sends" in cluster.sh(f"cat {D}/up.log", host="node01").stdout
        # the device is inside the namespace, not on the host
        assert "wg0" in cluster.sh(f"{inner} ip -br link", host="node01").stdout
        assert "wg0" not in cluster.sh("ip -br link", host="node01").stdout
        # the UDP socket is the host's (unprivileged user, host namespace), on the cluster address only: one
        # v4 socket, nothing on the wildcard or on v6
        sockets = cluster.sh("ss -Hlunp 'sport = :51820'", host="node01").stdout.splitlines()
        assert len(sockets) == 1 and "ksi-wg" in sockets[0], sockets
        assert sockets[0].split()[3] == f"{address['node01']}:51820", sockets
        show = json.loads(cluster.sh(f"{wg} show --uapi {D}/wg.sock", host="node01").stdout)
        peer = show["peers"][0]
        assert peer["public_key"] == pub["node02"]
        assert peer["latest_handshake"] > 0
        assert peer["rx_bytes"] > 0 and peer["tx_bytes"] > 0
    finally:
        for host in PEERS:
            cluster.sh(f"pkill -u ksiuser -f '[k]si-wg up' ; pkill -u ksiuser -f '[s]leep 300'; "
                       f"pkill -u ksiuser -f '[h]ttp.server -d /tmp 8080'; sleep 0.5; rm -rf {D} /tmp/ksi-wg.bin",
                       host=host, check=False)
    for host in PEERS:
        assert cluster.sh("pgrep -u ksiuser -a -f '[k]si-wg' || true", host=host).stdout.strip() == ""
