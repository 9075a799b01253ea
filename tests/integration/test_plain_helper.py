"""The `plain` mesh's data path: `ksi-wg plain` on two virtual hosts, as the unprivileged user, and what it
does with datagrams that are not its peers' or lack the job's tag."""

import json
import time

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

D = "/tmp/ksi-plaintest"
PEERS = {"node01": "10.250.0.1", "node02": "10.250.0.2"}
PORT = 51830
SECRET = "a-job-secret-for-the-plain-mesh"
# One UDP datagram from this host to ADDRESS:PORT: a header with TAG (hex), sequence 1, 1 of 1, then bytes.
SEND = ("python3 -c 'import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
        "[s.sendto(bytes.fromhex(sys.argv[3]) + bytes([0, 0, 0, 1, 0, 1, 0, 0]) + bytes(100), "
        "(sys.argv[1], int(sys.argv[2]))) for _ in range(5)]' {address} {port} {tag}")
# The same, from SOURCE:SPORT (someone on the network forging a peer's address: root, a raw socket).
FORGE = ("python3 -c 'import socket, struct, sys\n"
         "src, sport, dst, dport, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]\n"
         "body = bytes.fromhex(tag) + bytes([0, 0, 0, 1, 0, 1, 0, 0]) + bytes(100)\n"
         "udp = struct.pack(\"!HHHH\", sport, dport, 8 + len(body), 0) + body\n"
         "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)\n"
         "s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)\n"
         "ip = struct.pack(\"!BBHHHBBH4s4s\", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, "
         "socket.inet_aton(src), socket.inet_aton(dst))\n"
         "[s.sendto(ip + udp, (dst, 0)) for _ in range(5)]' {source} {sport} {address} {port} {tag}")


def _tag() -> str:
    import hashlib
    import hmac

    return hmac.new(SECRET.encode(), b"ksi-multi plain mesh tag", hashlib.sha256).digest()[:8].hex()


def test_plain_mesh_carries_traffic_and_drops_strangers(cluster, images):
    wg = f"{IMAGES}/ksi-wg"
    address = {h.name: h.address for h in cluster.plan.compute}
    try:
        for host, mesh_ip in PEERS.items():
            other = next(h for h in PEERS if h != host)
            cluster.sh(f"mkdir -p {D} && cd {D} && (setsid unshare --user --map-root-user --net "
                       "sh -c 'ip link set lo up; exec sleep 300' >/dev/null 2>&1 </dev/null & echo $! > inner.pid) && "
                       f"umask 077 && echo {SECRET} > secret && sleep 0.3 && "
                       f"(setsid {wg} plain --netns-pid $(cat inner.pid) --name mesh0 --mtu 1436 --addr {mesh_ip}/24 "
                       f"--status {D}/plain.sock --listen-address {address[host]} --listen-port {PORT} "
                       f"--secret-file secret --peer {other}={address[other]}:{PORT}={PEERS[other]}/32 "
                       ">plain.log 2>&1 </dev/null &)", host=host)
        for host in PEERS:
            cluster.wait_socket(host, f"{D}/plain.sock", f"{D}/plain.log")
        inner = f"nsenter --preserve-credentials -U -n -t $(cat {D}/inner.pid)"
        ping = cluster.sh(f"{inner} ping -c 3 -W 3 {PEERS['node02']}", host="node01", check=False)
        assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout + ping.stderr
        # a TCP transfer bigger than one super-packet, checked end to end
        cluster.sh(f"{inner} sh -c 'head -c 20000000 /dev/urandom > /tmp/ksi-plain.bin'", host="node02")
        cluster.sh(f"cd {D} && (setsid {inner} sh -c 'python3 -m http.server -d /tmp 8080 -b {PEERS['node02']}' "
                   ">http.log 2>&1 </dev/null &)", host="node02")
        time.sleep(1)
        got = cluster.sh(f"{inner} sh -c 'curl -s --retry 5 --retry-connrefused http://{PEERS['node02']}:8080/"
                         "ksi-plain.bin | sha256sum'", host="node01").stdout.split()[0]
        want = cluster.sh(f"{inner} sha256sum /tmp/ksi-plain.bin", host="node02").stdout.split()[0]
        assert got == want
        assert "mesh0" not in cluster.sh("ip -br link", host="node01").stdout  # the TUN is in the namespace
        sockets = cluster.sh(f"ss -Hlun 'sport = :{PORT}'", host="node01").stdout.splitlines()
        assert [s.split()[3] for s in sockets] == [f"{address['node01']}:{PORT}"], sockets

        def show() -> dict:
            return json.loads(cluster.sh(f"{wg} plain-show --status {D}/plain.sock", host="node01").stdout)

        before = show()
        assert before["peers"][0]["name"] == "node02" and before["peers"][0]["rx_bytes"] > 20_000_000
        # the right tag from a host that is not a peer: dropped as foreign
        cluster.sh(SEND.format(address=address["node01"], port=PORT, tag=_tag()), host="node03")
        # a peer's exact address and port, forged, without the job's tag: dropped as foreign to the job
        cluster.sh(FORGE.format(source=address["node02"], sport=PORT, address=address["node01"], port=PORT,
                                tag="00" * 8), host="node03", root=True)
        deadline = time.monotonic() + 10
        while (after := show())["bad_tag"] < before["bad_tag"] + 5 or after["foreign"] < before["foreign"] + 5:
            assert time.monotonic() < deadline, (before, after)
            time.sleep(0.2)
        assert after["peers"][0]["rx_packets"] == before["peers"][0]["rx_packets"]
    finally:
        for host in PEERS:
            cluster.sh(f"pkill -f '[k]si-wg plain' ; pkill -f '[h]ttp.server -d /tmp'; "
                       f"kill $(cat {D}/inner.pid) 2>/dev/null; rm -rf {D}", host=host, check=False)
