#!/usr/bin/env python3
"""Network and startup benchmark of multi-node clusters, every number against a baseline from the same run.

Run as root:  python3 perf/bench_network.py [--seconds 5] [--links 1500,9000] [--quick] [--keep] [--out DIR]

In a fresh 4-host sandbox per link MTU (the sandbox network's MTU, 1500 first):
  * host<->host: iperf3 (1 and 4 TCP streams) and ping between two bare sandbox hosts: the baseline;
  * pod<->pod across two nodes of a `sbatch -N 2` cluster: at 1500 for every mesh plugin (wireguard,
    wireguard-forwarded, vxlan) under pasta and slirp4netns, and the default mesh with a smaller
    mesh_mtu; at the other link MTUs the default mesh and vxlan (MTU sweep). The same iperf3 and ping
    between a pod on each node, with the CPU time every component used;
  * startup for N = 1, 2, 4 (submit to Ready) with rank 0's phase breakdown;
  * at 1500, TCP between a pod on a worker and the login host (outside the cluster): pod->outside and the
    reverse direction of the same connection (iperf3 -R), 1 and 4 streams, request-response latency and
    new connections per second, with `egress: proxy` and `egress: helper` under pasta and slirp4netns,
    against the same measurements from the worker's host itself.
Prints tables of ratios to host<->host over the same link and writes <out>/network.json and network.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import dataclass

from _sandbox import REPO, Sandbox, finish, fresh_sandbox, iperf_gbps, ksi, run_name, sh, submit

from ksi_multi.sandbox.cluster import SHARED

IMAGES = SHARED / "images"
TOOLBOX = "localhost/ksi-multi/toolbox:1"
PHASES = ("doctor", "rendezvous", "node", "mesh", "cluster", "ready")
HOSTS = ("node01", "node02")
# CPU ticks per process name (and the machine's busy ticks), read on a sandbox host.
CPU_PROBE = r"""python3 -c '
import glob, json, os
out = {}
for stat in glob.glob("/proc/[0-9]*/stat"):
    try:
        text = open(stat).read()
    except OSError:
        continue
    comm = text[text.index("(") + 1:text.rindex(")")].split(".")[0]
    fields = text[text.rindex(")") + 2:].split()
    out[comm] = out.get(comm, 0) + int(fields[11]) + int(fields[12])
cpu = open("/proc/stat").readline().split()[1:]
out["_busy"] = sum(map(int, cpu)) - int(cpu[3]) - int(cpu[4])
out["_softirq"] = int(cpu[6])
print(json.dumps(out))'"""


@dataclass(frozen=True)
class Setup:
    mesh: str
    backend: str
    mtu: int = 0  # mesh_mtu; 0: derived from the link
    link: int = 1500  # the sandbox network's MTU

    @property
    def label(self) -> str:
        return (f"{self.mesh}/{self.backend}" + (f" mtu {self.mtu}" if self.mtu else "")
                + (f" link {self.link}" if self.link != 1500 else ""))


def setups(links: list[int], quick: bool) -> list[Setup]:
    out = [Setup("wireguard", "pasta")]
    if not quick:
        out += [Setup("wireguard", "slirp4netns"), Setup("wireguard-forwarded", "pasta"),
                Setup("wireguard-forwarded", "slirp4netns"), Setup("vxlan", "pasta"), Setup("vxlan", "slirp4netns"),
                Setup("wireguard", "pasta", mtu=1280)]
    for link in links[1:]:
        out += [Setup("wireguard", "pasta", link=link)] + ([] if quick else [Setup("vxlan", "pasta", link=link)])
    return out


def ping_ms(output: str) -> float:
    return float(re.search(r"= [\d.]+/([\d.]+)/", output).group(1))


def cpu_sample(box: Sandbox) -> dict[str, dict[str, int]]:
    return {h: json.loads(sh(box, CPU_PROBE, host=h, root=True)) for h in HOSTS}


def cpu_use(before: dict, after: dict, seconds: float) -> dict[str, float]:
    """Per component, in % of one core, summed over both hosts; plus the machine's busy and softirq time.
    The sandbox hosts share one machine, so the machine-wide counters are read once."""
    hz = os.sysconf("SC_CLK_TCK")
    use: dict[str, float] = {}
    for h in HOSTS:
        for comm, ticks in after[h].items():
            if not comm.startswith("_"):
                use[comm] = use.get(comm, 0) + (ticks - before[h].get(comm, 0)) / hz / seconds * 100
    for key in ("_busy", "_softirq"):
        use[key] = (after[HOSTS[0]][key] - before[HOSTS[0]][key]) / hz / seconds * 100
    return {k: round(v, 1) for k, v in use.items() if v >= 1 or k.startswith("_")}


def measure(box: Sandbox, host: str, client: str, server_ip: str, seconds: int) -> dict:
    """iperf3 1 and 4 streams (CPU sampled during the 1-stream run) and ping, run on `host`; `client`
    prefixes each command so that it runs where the traffic starts."""
    before = cpu_sample(box)
    started = time.monotonic()
    one = iperf_gbps(sh(box, f"{client} iperf3 -c {server_ip} -t {seconds} -J", host, timeout=seconds + 60))
    cpu = cpu_use(before, cpu_sample(box), time.monotonic() - started)
    four = iperf_gbps(sh(box, f"{client} iperf3 -c {server_ip} -t {seconds} -P 4 -J", host, timeout=seconds + 60))
    # On the bare hosts ping needs root (no ping_group_range there); in pods it runs as the pod's root.
    latency = ping_ms(sh(box, f"{client} ping -c 20 -i 0.2 -q {server_ip}", host, root=not client, timeout=60))
    return {"gbps_1": one, "gbps_4": four, "ping_ms": latency, "cpu": cpu}


def host_to_host(box: Sandbox, seconds: int, link: int) -> dict:
    sh(box, "setsid iperf3 -s -p 5201 >/dev/null 2>&1 < /dev/null &", host=HOSTS[1])
    time.sleep(0.5)
    try:
        return measure(box, HOSTS[0], "", HOSTS[1], seconds) | {"mtu": link, "link": link}
    finally:
        sh(box, "pkill -u ksiuser -x iperf3 || true", host=HOSTS[1])


def pod(kube: str, name: str, node: str, command: str) -> str:
    overrides = json.dumps({"spec": {"nodeName": node, "tolerations": [{"operator": "Exists"}]}})
    return (f"{kube} kubectl run {name} --image={TOOLBOX} --restart=Never --overrides='{overrides}' "
            f"--command -- {command}")


def pod_to_pod(box: Sandbox, setup: Setup, seconds: int) -> dict:
    options = f"--mesh {setup.mesh} --net-backend {setup.backend}" + (f" --mesh-mtu {setup.mtu}" if setup.mtu else "")
    job, status, ready_s = submit(box, 2, options)
    try:
        kube = f"KUBECONFIG={status['kubeconfig']}"
        sh(box, pod(kube, "server", HOSTS[1], "iperf3 -s"))
        sh(box, pod(kube, "client", HOSTS[0], "sleep infinity"))
        sh(box, f"{kube} kubectl wait --for=condition=ready pod/server pod/client --timeout=180s", timeout=200)
        server_ip = sh(box, f"{kube} kubectl get pod server -o jsonpath='{{.status.podIP}}'").strip()
        time.sleep(1)
        mtu = int(re.search(r"mtu (\d+)", sh(box, f"{kube} kubectl exec client -- ip link show eth0")).group(1))
        result = measure(box, "login", f"{kube} kubectl exec client --", server_ip, seconds)
        return result | {"mtu": mtu, "link": setup.link, "submit_to_ready": ready_s}
    finally:
        finish(box, job)


OUTSIDE = "login"
PROBE = REPO / "perf" / "tcp_probe.py"
EGRESS = (("proxy", "pasta"), ("helper", "pasta"), ("proxy", "slirp4netns"), ("helper", "slirp4netns"))


def outside_servers(box: Sandbox) -> None:
    """iperf3 and the TCP probe's echo server on the login host, outside every cluster."""
    sh(box, "setsid iperf3 -s -p 5201 >/dev/null 2>&1 < /dev/null &", host=OUTSIDE)
    sh(box, f"setsid python3 {PROBE} serve 5301 86400 >/dev/null 2>&1 < /dev/null &", host=OUTSIDE)
    time.sleep(0.5)


def to_outside(box: Sandbox, host: str, client: str, probe: str, seconds: int) -> dict:
    """TCP from `client` (on `host`) to the login host: both directions, 1 and 4 streams, RR latency, setup rate."""
    target = box.plan().login.address

    def iperf(extra: str) -> float:
        return iperf_gbps(sh(box, f"{client} iperf3 -c {target} -t {seconds} -J {extra}", host, timeout=seconds + 90))

    before = cpu_sample(box)
    started = time.monotonic()
    out = {"gbps_1": iperf("")}
    out["cpu"] = cpu_use(before, cpu_sample(box), time.monotonic() - started)
    out |= {"gbps_4": iperf("-P 4"), "gbps_rev": iperf("-R")}
    out |= json.loads(sh(box, f"{client} python3 {probe} rr {target} 5301 2000", host, timeout=120))
    out |= json.loads(sh(box, f"{client} python3 {probe} connect {target} 5301 {seconds}", host, timeout=120))
    return out


def egress(box: Sandbox, mode: str, backend: str, seconds: int) -> dict:
    job, status, _ = submit(box, 2, f"--egress {mode} --net-backend {backend}")
    try:
        kube = f"KUBECONFIG={status['kubeconfig']}"
        sh(box, f"{kube} kubectl create configmap probe --from-file={PROBE}")
        overrides = json.dumps({"spec": {"nodeName": HOSTS[1], "containers": [{
            "name": "client", "image": TOOLBOX, "command": ["sleep", "infinity"],
            "volumeMounts": [{"name": "probe", "mountPath": "/probe"}]}],
            "volumes": [{"name": "probe", "configMap": {"name": "probe"}}]}})
        sh(box, f"{kube} kubectl run client --image={TOOLBOX} --restart=Never --overrides='{overrides}'")
        sh(box, f"{kube} kubectl wait --for=condition=ready pod/client --timeout=180s", timeout=200)
        return to_outside(box, "login", f"{kube} kubectl exec client --", "/probe/tcp_probe.py", seconds)
    finally:
        finish(box, job)


def startup(box: Sandbox, nodes: int) -> dict:
    job, status, ready_s = submit(box, nodes, "")
    finish(box, job)
    return {"submit_to_ready": ready_s, "timings": status["timings"]}


def report_outside(base: dict, rows: dict[str, dict]) -> list[str]:
    head = (f"{'TCP pod on a worker <-> login host':<36}{'out':>8}{'ratio':>7}{'out x4':>8}{'ratio':>7}{'in':>8}"
            f"{'ratio':>7}{'RR p50 us':>11}{'+%':>7}{'conn/s':>9}{'ratio':>7}")
    lines = ["", head, "-" * len(head)]
    for name, r in {f"{HOSTS[1]} host itself (baseline)": base, **rows}.items():
        lines.append(f"{name:<36}{r['gbps_1']:>8.2f}{r['gbps_1'] / base['gbps_1']:>7.2f}{r['gbps_4']:>8.2f}"
                     f"{r['gbps_4'] / base['gbps_4']:>7.2f}{r['gbps_rev']:>8.2f}{r['gbps_rev'] / base['gbps_rev']:>7.2f}"
                     f"{r['p50_us']:>11.0f}{(r['p50_us'] / base['p50_us'] - 1) * 100:>+7.0f}{r['per_s']:>9.0f}"
                     f"{r['per_s'] / base['per_s']:>7.2f}")
    lines += ["(Gbit/s; out = pod to login, in = login to pod over the same connection: iperf3 -R)",
              "CPU during the 1-stream run out, % of one core (node01+node02; busy/softirq: the whole machine):"]
    for name, r in {f"{HOSTS[1]} host itself (baseline)": base, **rows}.items():
        top = sorted(((k, v) for k, v in r["cpu"].items() if not k.startswith("_")), key=lambda kv: -kv[1])[:5]
        lines.append(f"  {name:<38} busy {r['cpu']['_busy']:>4.0f}  softirq {r['cpu']['_softirq']:>3.0f}  "
                     + ", ".join(f"{k} {v:.0f}" for k, v in top))
    return lines


def report(baselines: dict[int, dict], pods: dict[str, dict], starts: dict[int, dict], seconds: int) -> list[str]:
    lines = [f"ksi-multi network benchmark ({os.cpu_count()} CPUs shared by all sandbox hosts; iperf3 {seconds} s, "
             "ping 20x); ratios to host<->host over the same link", ""]
    head = (f"{'path':<44}{'link':>6}{'MTU':>6}{'1 stream':>10}{'ratio':>7}{'4 streams':>11}{'ratio':>7}"
            f"{'ping ms':>9}{'+%':>7}")
    lines += [head, "-" * len(head)]
    rows = {f"host<->host link {k} (baseline)": v for k, v in baselines.items()}
    rows |= {f"pod<->pod {k}": v for k, v in pods.items()}
    for name, r in rows.items():
        base = baselines[r["link"]]
        lines.append(f"{name:<44}{r['link']:>6}{r['mtu']:>6}{r['gbps_1']:>10.2f}{r['gbps_1'] / base['gbps_1']:>7.2f}"
                     f"{r['gbps_4']:>11.2f}{r['gbps_4'] / base['gbps_4']:>7.2f}{r['ping_ms']:>9.3f}"
                     f"{(r['ping_ms'] / base['ping_ms'] - 1) * 100:>+7.0f}")
    lines += ["", "CPU during the 1-stream run, % of one core (both hosts; busy/softirq: the whole machine):"]
    for name, r in rows.items():
        top = sorted(((k, v) for k, v in r["cpu"].items() if not k.startswith("_")), key=lambda kv: -kv[1])[:5]
        lines.append(f"  {name:<42} busy {r['cpu']['_busy']:>4.0f}  softirq {r['cpu']['_softirq']:>3.0f}  "
                     + ", ".join(f"{k} {v:.0f}" for k, v in top))
    if not starts:
        return lines
    lines += ["", f"{'startup (s)':<16}" + "".join(f"{'N=' + str(n):>9}" for n in starts)]
    for phase in PHASES:
        lines.append(f"{'  ' + phase:<16}" + "".join(f"{starts[n]['timings'].get(phase, 0):>9.1f}" for n in starts))
    lines.append(f"{'  submit->Ready':<16}" + "".join(f"{starts[n]['submit_to_ready']:>9.1f}" for n in starts))
    return lines


def plot(baselines: dict[int, dict], pods: dict[str, dict], starts: dict[int, dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bw, lat, st) = plt.subplots(1, 3, figsize=(18, 7), gridspec_kw={"width_ratios": [3, 3, 2]})
    names = list(pods)
    ys = range(len(names))
    for offset, key, label in ((-0.2, "gbps_1", "1 stream"), (0.2, "gbps_4", "4 streams")):
        bw.barh([y + offset for y in ys], [pods[n][key] / baselines[pods[n]["link"]][key] for n in names],
                height=0.4, label=label)
    bw.axvline(0.8, color="green", linestyle="--", label="goal 0.8")
    bw.set_yticks(list(ys), names)
    bw.invert_yaxis()
    first = baselines[min(baselines)]
    bw.set_xlabel(f"pod<->pod TCP / host<->host over the same link (link 1500: {first['gbps_1']:.1f} / "
                  f"{first['gbps_4']:.1f} Gbit/s)")
    bw.legend()
    lat.barh(list(ys), [pods[n]["ping_ms"] / baselines[pods[n]["link"]]["ping_ms"] for n in names], color="tab:orange")
    lat.axvline(1.15, color="green", linestyle="--", label="goal +15%")
    lat.set_yticks(list(ys), [""] * len(names))
    lat.invert_yaxis()
    lat.set_xlabel(f"ping pod<->pod / host<->host (link 1500: {first['ping_ms']:.3f} ms)")
    lat.legend()
    bottom = [0.0] * len(starts)
    for phase in PHASES:
        values = [starts[n]["timings"].get(phase, 0) for n in starts]
        st.bar([f"N={n}" for n in starts], values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    st.set_ylabel("seconds (rank 0's phases)")
    st.set_title("startup")
    st.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_outside(base: dict, rows: dict[str, dict], path) -> None:
    """Pod on a worker <-> login host, each measure as a ratio to the worker's host itself."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measures = (("gbps_1", "out, 1 stream"), ("gbps_4", "out, 4 streams"), ("gbps_rev", "in (iperf3 -R)"),
                ("per_s", "connections/s"))
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.9 * len(rows)))
    names = list(rows)
    for i, (key, label) in enumerate(measures):
        ax.barh([y + (i - 1.5) * 0.2 for y in range(len(names))], [rows[n][key] / base[key] for n in names],
                height=0.2, label=label)
    ax.axvline(0.8, color="green", linestyle="--", label="goal 0.8")
    ax.set_yticks(list(range(len(names))), names)
    ax.invert_yaxis()
    ax.set_xlabel(f"TCP pod <-> login host / the worker's host itself ({base['gbps_1']:.1f} Gbit/s out, "
                  f"{base['gbps_rev']:.1f} in, {base['per_s']:.0f} conn/s)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 duration per run")
    parser.add_argument("--links", default="1500,9000", help="sandbox network MTUs, comma-separated; 1500 first")
    parser.add_argument("--quick", action="store_true", help="only the default mesh under pasta; N=1 and 2")
    parser.add_argument("--keep", action="store_true", help="leave the (last) sandbox up")
    parser.add_argument("--egress", default=",".join(f"{m}/{b}" for m, b in EGRESS),
                        help="egress setups (mode/backend) for the outside part")
    parser.add_argument("--parts", default="pods,outside,startup",
                        help="what to measure besides host<->host: pods (pod<->pod), outside (pod<->login host, "
                             "egress), startup")
    parser.add_argument("--out", default=str(REPO / "perf" / "results"), help="where network.json/png go")
    args = parser.parse_args()
    links = [1500] + [int(m) for m in args.links.split(",") if int(m) != 1500]
    parts = set(args.parts.split(","))
    plan = setups(links, args.quick) if "pods" in parts else []
    ksi("image", "build", "--output", str(IMAGES))
    baselines: dict[int, dict] = {}
    pods: dict[str, dict] = {}
    starts: dict[int, dict] = {}
    outside: dict[str, dict] = {}
    for link in links:
        box = fresh_sandbox(box_name := run_name())
        ksi("sandbox", "up", "-N", "4", "--mtu", str(link), "--name", box_name)
        try:
            baselines[link] = host_to_host(box, args.seconds, link)
            print(f"  host<->host link {link}: {baselines[link]['gbps_1']:.2f} Gbit/s", flush=True)
            for s in (s for s in plan if s.link == link):
                pods[s.label] = pod_to_pod(box, s, args.seconds)
                print(f"  {s.label}: {pods[s.label]['gbps_1']:.2f} Gbit/s, {pods[s.label]['ping_ms']:.3f} ms",
                      flush=True)
            if link == links[0] and "outside" in parts:
                outside_servers(box)
                outside["base"] = to_outside(box, HOSTS[1], "", str(PROBE), args.seconds)
                chosen = [tuple(e.split("/")) for e in args.egress.split(",")]
                for mode, backend in chosen[:2] if args.quick else chosen:
                    outside[f"egress {mode}/{backend}"] = egress(box, mode, backend, args.seconds)
                    print(f"  egress {mode}/{backend}: {outside[f'egress {mode}/{backend}']['gbps_1']:.2f} Gbit/s out",
                          flush=True)
            if link == links[0] and "startup" in parts:
                starts = {n: startup(box, n) for n in ((1, 2) if args.quick else (1, 2, 4))}
        finally:
            if not (args.keep and link == links[-1]):
                ksi("sandbox", "down", "--name", box_name)
    print("\n" + "\n".join(report(baselines, pods, starts, args.seconds)))
    if outside:
        rows = {k: v for k, v in outside.items() if k != "base"}
        print("\n".join(report_outside(outside["base"], rows)))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "network.json"), "w") as fh:
        json.dump({"baselines": baselines, "pods": pods, "startup": starts, "outside": outside,
                   "seconds": args.seconds}, fh, indent=1)
    if outside:
        plot_outside(outside["base"], rows, os.path.join(args.out, "egress.png"))
    if pods and starts:
        plot(baselines, pods, starts, os.path.join(args.out, "network.png"))
    print(f"\nwrote {args.out}/network.json" + (" and network.png" if pods and starts else ""))


if __name__ == "__main__":
    main()
