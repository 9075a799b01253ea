#!/usr/bin/env python3
"""The mesh helpers alone, between two namespaces on this machine: no sandbox, no Kubernetes.

Run as root:  python3 perf/mesh_pair.py [--ksi-wg PATH] [--seconds 5] [--streams 1,4] [--mtus 1500,9000]
              [--meshes veth,host,wireguard,plain] [--rounds 1] [--profile DIR]

Two user+network namespaces ("nodes", each like a node container: a sleeping process holds them) are
joined by each mesh in turn, its UDP socket on the host (127.0.0.1 and 127.0.0.2 on lo, the "hosts"):
  * veth: a veth pair between the namespaces (the kernel, no mesh: the ceiling);
  * host: iperf3 between the two host addresses themselves (the baseline the meshes are set against);
  * wireguard: `ksi-wg up` on each side (ChaCha20-Poly1305 in user space);
  * wireguard-stock: the same with `--stock-datapath` (wireguard-go's own checksums and copying sends:
    the data path before wireguard-patch/'s changes), for a before/after in one run;
  * plain: `ksi-wg plain` on each side (whole GSO super-packets over UDP, unencrypted).
iperf3 (TCP, 1 and N streams) from one namespace to the other, with the CPU the helpers used per Gbit/s.
Each "path MTU" (--mtus) sets lo's MTU for the run, as a cluster network's would be. Needs iperf3 and ip.
With --rounds N every setup runs N times, interleaved (this machine's speed drifts), and the table shows
the medians with the range of Gbit/s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ksi_multi.run import CommandError, start_helper  # noqa: E402
from netplugins import OVERHEAD  # noqa: E402

HOSTS = ("127.0.0.1", "127.0.0.2")
MESH = ("10.250.0.1", "10.250.0.2")
PORTS = (51901, 51902)
SECRET = "mesh-pair-benchmark-secret"


def sh(*cmd: str, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: {proc.stderr or proc.stdout}")
    return proc.stdout


class Namespaces:
    """Two sleeping processes, each in a new user+network namespace (root mapped to root)."""

    def __init__(self) -> None:
        self.procs = [subprocess.Popen(["unshare", "--user", "--map-root-user", "--net", "sleep", "infinity"])
                      for _ in range(2)]
        time.sleep(0.3)
        self.pids = [p.pid for p in self.procs]
        for pid in self.pids:
            self.run(pid, "ip", "link", "set", "lo", "up")

    def run(self, pid: int, *cmd: str, check: bool = True, timeout: float = 120) -> str:
        return sh("nsenter", "-t", str(pid), "-n", *cmd, check=check, timeout=timeout)

    def close(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            pass
    return total


def iperf(run_client, server_ip: str, seconds: int, streams: int, helpers: list[int]) -> dict:
    before, started = cpu_ticks(helpers), time.monotonic()
    out = json.loads(run_client("iperf3", "-c", server_ip, "-t", str(seconds), "-P", str(streams), "-J"))
    elapsed = time.monotonic() - started
    gbps = out["end"]["sum_received"]["bits_per_second"] / 1e9
    cores = (cpu_ticks(helpers) - before) / os.sysconf("SC_CLK_TCK") / elapsed
    return {"gbps": round(gbps, 3), "helper_cores": round(cores, 2),
            "cores_per_gbps": round(cores / gbps, 3) if gbps and helpers else None}


def measure(ns: Namespaces, server_ip: str, seconds: int, streams: list[int], helpers: list[int],
            in_ns: bool = True) -> dict:
    server = (["nsenter", "-t", str(ns.pids[1]), "-n"] if in_ns else []) + ["iperf3", "-s", "-B", server_ip, "-p", "5299"]
    srv = subprocess.Popen(server, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        def client(*cmd: str) -> str:
            cmd = (*cmd, "-p", "5299")
            return ns.run(ns.pids[0], *cmd, timeout=seconds + 60) if in_ns else sh(*cmd, timeout=seconds + 60)
        return {n: iperf(client, server_ip, seconds, n, helpers) for n in streams}
    finally:
        srv.kill()
        srv.wait()


def summary(values: list[dict]) -> dict:
    """Medians of several runs of one setup, with the range of its Gbit/s."""
    gbps = [v["gbps"] for v in values]
    per_gbit = [v["cores_per_gbps"] for v in values if v["cores_per_gbps"]]
    return {"gbps": round(statistics.median(gbps), 3), "min_gbps": min(gbps), "max_gbps": max(gbps),
            "helper_cores": round(statistics.median(v["helper_cores"] for v in values), 2),
            "cores_per_gbps": round(statistics.median(per_gbit), 3) if per_gbit else None}


def veth(ns: Namespaces, mtu: int) -> None:
    sh("ip", "link", "add", "ksi-pa", "mtu", str(mtu), "netns", str(ns.pids[0]), "type", "veth",
       "peer", "ksi-pb", "mtu", str(mtu), "netns", str(ns.pids[1]))
    for pid, dev, ip in ((ns.pids[0], "ksi-pa", MESH[0]), (ns.pids[1], "ksi-pb", MESH[1])):
        ns.run(pid, "ip", "addr", "add", f"{ip}/24", "dev", dev)
        ns.run(pid, "ip", "link", "set", dev, "up")


def start_mesh(ns: Namespaces, kind: str, ksi_wg: str, work: Path, path_mtu: int, profile: Path | None) -> list:
    procs = []
    kind, _, variant = kind.partition("-")
    overhead = OVERHEAD[kind]
    secret = work / "secret"
    secret.write_text(SECRET)
    keys = []
    if kind == "wireguard":
        for i in range(2):
            key = sh(ksi_wg, "genkey").strip()
            (work / f"key{i}").write_text(key + "\n")
            keys.append(_pubkey(ksi_wg, key))
    for i in range(2):
        j = 1 - i
        sock = work / f"{kind}{i}.sock"
        cmd = [ksi_wg, "up" if kind == "wireguard" else "plain", "--netns-pid", str(ns.pids[i]), "--name", "mesh0",
               "--mtu", str(path_mtu - overhead), "--addr", f"{MESH[i]}/24", "--listen-address", HOSTS[i],
               "--listen-port", str(PORTS[i])]
        if kind == "wireguard":
            conf = work / f"peer{i}.conf"
            conf.write_text(f"public_key={keys[j]}\nendpoint={HOSTS[j]}:{PORTS[j]}\nallowed_ip={MESH[j]}/32\n")
            cmd += ["--uapi", str(sock), "--private-key-file", str(work / f"key{i}"), "--config", str(conf)]
        else:
            cmd += ["--status", str(sock), "--secret-file", str(secret), "--path-mtu", str(path_mtu),
                    "--peer", f"node{j}={HOSTS[j]}:{PORTS[j]}={MESH[j]}/32"]
        if variant == "stock":
            cmd.append("--stock-datapath")
        env = dict(os.environ)
        if profile:
            env["KSI_WG_CPUPROFILE"] = str(profile / f"{kind}{variant}-{path_mtu}-{i}.pprof")
        try:
            procs.append(start_helper(cmd, work / f"{kind}{i}.log", sock, kind, "see its log", env=env))
        except CommandError as exc:
            stop_all(procs)
            raise SystemExit(str(exc)) from None
    deadline = time.monotonic() + 20
    while not reachable(ns.pids[0], MESH[1]):
        if time.monotonic() > deadline:
            stop_all(procs)
            raise SystemExit(f"{kind}: nothing reaches {MESH[1]} through the mesh: " +
                             " | ".join((work / f"{kind}{i}.log").read_text() for i in range(2)))
    return procs


# A refused TCP connection to a closed port proves the far namespace answers (no ping needed).
REACH = ("import socket, sys\ntry:\n    socket.create_connection((sys.argv[1], 9), timeout=1)\n"
         "except ConnectionRefusedError:\n    sys.exit(0)\nexcept OSError:\n    sys.exit(1)")


def reachable(pid: int, address: str) -> bool:
    cmd = ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", REACH, address]
    return subprocess.run(cmd, capture_output=True).returncode == 0


def _pubkey(ksi_wg: str, key: str) -> str:
    return subprocess.run([ksi_wg, "pubkey"], input=key, capture_output=True, text=True, check=True).stdout.strip()


def stop_all(procs: list) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ksi-wg", default="/var/cache/ksi-multi/shared/images/ksi-wg")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--streams", default="1,4")
    parser.add_argument("--mtus", default="1500,9000", help="path MTUs (lo's MTU during the run)")
    parser.add_argument("--meshes", default="veth,host,wireguard,plain",
                        help="of veth, host, wireguard, wireguard-stock, plain")
    parser.add_argument("--rounds", type=int, default=1, help="runs of every setup, interleaved; medians shown")
    parser.add_argument("--profile", default=None, help="write each helper's CPU profile (pprof) to this directory")
    parser.add_argument("--out", default=str(REPO / "perf" / "results" / "mesh_pair.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (namespaces, veth, lo's MTU)")
    streams = [int(s) for s in args.streams.split(",")]
    profile = Path(args.profile) if args.profile else None
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    sh("ip", "addr", "replace", f"{HOSTS[1]}/8", "dev", "lo")
    lo_mtu = sh("cat", "/sys/class/net/lo/mtu").strip()
    runs: dict[str, list[dict]] = {}
    try:
        for mtu in [int(m) for _ in range(args.rounds) for m in args.mtus.split(",")]:
            sh("ip", "link", "set", "lo", "mtu", str(mtu))
            for kind in args.meshes.split(","):
                ns = Namespaces()
                procs: list = []
                try:
                    with tempfile.TemporaryDirectory() as tmp:
                        if kind == "veth":
                            veth(ns, mtu)
                            r = measure(ns, MESH[1], args.seconds, streams, [])
                        elif kind == "host":
                            r = measure(ns, HOSTS[1], args.seconds, streams, [], in_ns=False)
                        else:
                            procs = start_mesh(ns, kind, args.ksi_wg, Path(tmp), mtu, profile)
                            r = measure(ns, MESH[1], args.seconds, streams, [p.pid for p in procs])
                            stop_all(procs)
                    runs.setdefault(f"{kind} path {mtu}", []).append(r)
                    print(f"  {kind} path {mtu}: " + ", ".join(f"{n} stream(s) {v['gbps']:.2f} Gbit/s" for n, v in r.items()),
                          flush=True)
                finally:
                    stop_all(procs)
                    ns.close()
    finally:
        sh("ip", "link", "set", "lo", "mtu", lo_mtu)
        sh("ip", "addr", "del", f"{HOSTS[1]}/8", "dev", "lo", check=False)
    results = {name: {n: summary([r[n] for r in rs]) for n in streams} for name, rs in runs.items()}
    print(f"\nmesh helpers between two namespaces ({os.cpu_count()} CPUs; iperf3 {args.seconds} s; "
          f"{args.rounds} round(s), medians); ratio: to host (the two host addresses, same path MTU)\n")
    head = f"{'setup':<26}" + "".join(f"{str(n) + ' stream(s)':>14}{'range':>13}{'ratio':>7}{'cores/Gbit':>11}"
                                      for n in streams)
    print(head + "\n" + "-" * len(head))
    for name, r in results.items():
        base = results.get(f"host path {name.rsplit(' ', 1)[1]}")
        cells = ""
        for n in streams:
            v = r[n]
            ratio = v["gbps"] / base[n]["gbps"] if base else 0
            spread = f"{v['min_gbps']:.2f}-{v['max_gbps']:.2f}"
            cells += (f"{v['gbps']:>14.2f}{spread:>13}{ratio:>7.2f}"
                      f"{v['cores_per_gbps'] if v['cores_per_gbps'] else 0:>11.3f}")
        print(f"{name:<26}{cells}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"cpus": os.cpu_count(), "seconds": args.seconds, "rounds": args.rounds, "results": results,
                   "runs": runs}, fh, indent=1)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    sys.exit(main())
