#!/usr/bin/env python3
"""Network and startup benchmark of multi-node clusters in the sandbox: a driver of `ksi-multi bench`.

Run as root:  python3 perf/bench_network.py [--seconds 5] [--links 1500,9000] [--quick] [--keep] [--out DIR]

In a fresh 4-host sandbox per link MTU (the sandbox network's MTU, 1500 first):
  * every route of `ksi-multi bench` for the default setup (its own table printed as it is);
  * pod<->pod across two nodes for each setup: at 1500 every mesh plugin (wireguard, wireguard-forwarded,
    vxlan under pasta and slirp4netns; plain under pasta), the default mesh with a smaller mesh_mtu, and
    `federation: liqo` over the default mesh (the far pod offloaded from the hub); at the other link MTUs the
    default mesh, vxlan and plain. Each setup is a 2-node job measured by `ksi-multi bench --job ID
    --only pod-pod` as the sandbox user: TCP 1 and 4 streams, UDP and request-response latency, against
    host<->host between the same two hosts in the same run; with the CPU time every component used;
  * at 1500, traffic between pods and the hosts outside the cluster (`--only pod-outside,outside-nodeport`)
    for `egress: proxy` and `egress: helper` under pasta and slirp4netns;
  * startup for N = 1, 2, 4 (submit to Ready) with rank 0's phase breakdown, and for a federated job of 3
    (the hub and two providers: its cluster phase holds Liqo's install, its ready phase the peerings).
Prints tables of ratios and writes <out>/network.json, network.png and egress.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import dataclass

from _sandbox import REPO, Sandbox, finish, fresh_sandbox, ksi, run_name, sh, submit

from ksi_multi.sandbox.cluster import SHARED

IMAGES = SHARED / "images"
PHASES = ("doctor", "rendezvous", "node", "mesh", "cluster", "ready")
HOSTS = ("node01", "node02")
EGRESS = (("proxy", "pasta"), ("helper", "pasta"), ("proxy", "slirp4netns"), ("helper", "slirp4netns"))
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
    federation: str = "none"  # liqo: a cluster per node, the pods of the far one offloaded from the hub

    @property
    def label(self) -> str:
        return (("liqo over " if self.federation == "liqo" else "") + f"{self.mesh}/{self.backend}"
                + (f" mtu {self.mtu}" if self.mtu else "") + (f" link {self.link}" if self.link != 1500 else ""))

    @property
    def options(self) -> str:
        return (f"--mesh {self.mesh} --net-backend {self.backend}" + (f" --mesh-mtu {self.mtu}" if self.mtu else "")
                + (f" --federation {self.federation}" if self.federation != "none" else ""))


def setups(links: list[int], quick: bool) -> list[Setup]:
    out = [Setup("wireguard", "pasta")]
    if not quick:
        out += [Setup("wireguard", "slirp4netns"), Setup("wireguard-forwarded", "pasta"),
                Setup("wireguard-forwarded", "slirp4netns"), Setup("vxlan", "pasta"), Setup("vxlan", "slirp4netns"),
                Setup("plain", "pasta"), Setup("wireguard", "pasta", mtu=1280),
                Setup("wireguard", "pasta", federation="liqo")]
    for link in links[1:]:
        out += [Setup("wireguard", "pasta", link=link)] + ([] if quick else [Setup("vxlan", "pasta", link=link),
                                                                          Setup("plain", "pasta", link=link)])
    return out


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


def bench(box: Sandbox, job: str, routes: str, seconds: int) -> dict:
    """`ksi-multi bench` on the job as the sandbox user (routes: comma-separated, or "" for all): its JSON,
    its table, and the CPU used while it ran."""
    out = f"/tmp/ksi-bench-{job}"
    only = f"--only {routes}" if routes else ""
    before, started = cpu_sample(box), time.monotonic()
    printed = sh(box, f"ksi-multi bench --job {job} {only} --seconds {seconds} --out {out}", timeout=60 * seconds + 600)
    cpu = cpu_use(before, cpu_sample(box), time.monotonic() - started)
    result = json.loads(sh(box, f"cat {out}/bench-*.json && rm -rf {out}"))
    table = printed[printed.index("ksi-multi bench, job"):printed.index("wrote ")].rstrip()
    return {"routes": {r["key"]: r for r in result["routes"]}, "cpu": cpu, "table": table}


def pod_mtu(box: Sandbox, job: str) -> int:
    line = sh(box, f"grep -h 'mesh: .*(MTU' ~/.ksi-multi/jobs/{job}/agent-node01.log || true")
    found = re.search(r"\(MTU (\d+)\)", line)
    return int(found.group(1)) if found else 0


def pod_to_pod(box: Sandbox, setup: Setup, seconds: int, every_route: bool) -> dict:
    """The setup's pod<->pod route (every_route: all of `ksi-multi bench`'s, its table printed as well)."""
    job, _, ready_s = submit(box, 2, setup.options)
    try:
        return bench(box, job, "" if every_route else "pod-pod", seconds) | {"mtu": pod_mtu(box, job), "link": setup.link,
                                                       "submit_to_ready": ready_s}
    finally:
        finish(box, job)


def egress(box: Sandbox, mode: str, backend: str, seconds: int) -> dict:
    job, _, _ = submit(box, 2, f"--egress {mode} --net-backend {backend}")
    try:
        return bench(box, job, "pod-outside,outside-nodeport", seconds)
    finally:
        finish(box, job)


def startup(box: Sandbox, nodes: int, options: str = "") -> dict:
    job, status, ready_s = submit(box, nodes, options)
    finish(box, job)
    return {"submit_to_ready": ready_s, "timings": status["timings"]}


def _ratio_cells(route: dict, base: str) -> str:
    """Value and ratio (throughput) or increase in % (latency) of each measure; "-" where none was taken."""
    v, r = route["values"], route["ratios"]
    cells = ""
    for key in ("tcp_1", "tcp_4", "udp", "rr_p50", "rr_p99"):
        if key not in v or key not in r:
            cells += f"{'-':>8}{'':>7}"
        elif key.startswith("rr"):
            cells += f"{v[key]:>8.0f}{(r[key] - 1) * 100:>+7.0f}"
        else:
            cells += f"{v[key]:>8.2f}{r[key]:>7.2f}"
    return f"{cells}  {base}"


HEAD = (f"{'TCP 1':>8}{'ratio':>7}{'TCP 4':>8}{'ratio':>7}{'UDP':>8}{'ratio':>7}{'p50 us':>8}{'+%':>7}"
        f"{'p99 us':>8}{'+%':>7}")


def report(pods: dict[str, dict], starts: dict[str, dict], seconds: int) -> list[str]:
    lines = [f"ksi-multi network benchmark ({os.cpu_count()} CPUs shared by all sandbox hosts; `ksi-multi bench`, "
             f"iperf3 {seconds} s); ratios to host<->host between the same hosts in the same run", ""]
    head = f"{'pod<->pod across nodes':<40}{'link':>6}{'MTU':>6}" + HEAD + "  host<->host TCP 1 / 4, p50"
    lines += [head, "-" * len(head)]
    for name, r in pods.items():
        base = r["routes"]["host-host"]["values"]
        lines.append(f"{name:<40}{r['link']:>6}{r['mtu']:>6}"
                     + _ratio_cells(r["routes"]["pod-pod"], f"{base['tcp_1']:.2f} / {base['tcp_4']:.2f}, "
                                                            f"{base['rr_p50']:.0f} us"))
    lines += ["", "CPU during the whole run, % of one core (both hosts; busy/softirq: the whole machine):"]
    for name, r in pods.items():
        top = sorted(((k, v) for k, v in r["cpu"].items() if not k.startswith("_")), key=lambda kv: -kv[1])[:5]
        lines.append(f"  {name:<38} busy {r['cpu']['_busy']:>4.0f}  softirq {r['cpu']['_softirq']:>3.0f}  "
                     + ", ".join(f"{k} {v:.0f}" for k, v in top))
    if not starts:
        return lines
    lines += ["", f"{'startup (s)':<16}" + "".join(f"{n:>11}" for n in starts)]
    for phase in PHASES:
        lines.append(f"{'  ' + phase:<16}" + "".join(f"{starts[n]['timings'].get(phase, 0):>11.1f}" for n in starts))
    lines.append(f"{'  submit->Ready':<16}" + "".join(f"{starts[n]['submit_to_ready']:>11.1f}" for n in starts))
    return lines


def report_outside(rows: dict[str, dict]) -> list[str]:
    head = f"{'outside the cluster':<44}" + HEAD
    lines = ["", head, "-" * len(head)]
    for name, r in rows.items():
        base = r["routes"]["host-host"]["values"]
        for key, what in (("pod-outside", "pod -> other host"), ("outside-nodeport", "host -> NodePort -> pod")):
            lines.append(f"{name + ': ' + what:<44}" + _ratio_cells(r["routes"][key], ""))
        lines.append(f"{'  (host<->host in that run)':<44}{base['tcp_1']:>8.2f}{'':>7}{base['tcp_4']:>8.2f}{'':>7}"
                     f"{base.get('udp', 0):>8.2f}{'':>7}{base['rr_p50']:>8.0f}")
    return lines


def plot(pods: dict[str, dict], starts: dict[str, dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (bw, lat, st) = plt.subplots(1, 3, figsize=(18, 7), gridspec_kw={"width_ratios": [3, 3, 2]})
    names = list(pods)
    ys = range(len(names))
    ratios = {n: pods[n]["routes"]["pod-pod"]["ratios"] for n in names}
    for offset, key, label in ((-0.27, "tcp_1", "TCP 1 stream"), (0, "tcp_4", "TCP 4 streams"), (0.27, "udp", "UDP")):
        bw.barh([y + offset for y in ys], [ratios[n].get(key, 0) for n in names], height=0.27, label=label)
    bw.axvline(0.8, color="green", linestyle="--", label="goal 0.8")
    bw.set_yticks(list(ys), names)
    bw.invert_yaxis()
    bw.set_xlabel("pod<->pod across nodes / host<->host in the same run")
    bw.legend()
    for offset, key in ((-0.2, "rr_p50"), (0.2, "rr_p99")):
        lat.barh([y + offset for y in ys], [ratios[n].get(key, 0) for n in names], height=0.4, label=key)
    lat.axvline(1.15, color="green", linestyle="--", label="goal +15%")
    lat.set_yticks(list(ys), [""] * len(names))
    lat.invert_yaxis()
    lat.set_xlabel("request-response latency pod<->pod / host<->host")
    lat.legend()
    bottom = [0.0] * len(starts)
    for phase in PHASES:
        values = [starts[n]["timings"].get(phase, 0) for n in starts]
        st.bar(list(starts), values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    st.set_ylabel("seconds (rank 0's phases)")
    st.set_title("startup")
    st.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_outside(rows: dict[str, dict], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [(f"{name}: {what}", r["routes"][key]["ratios"]) for name, r in rows.items()
            for key, what in (("pod-outside", "pod -> host"), ("outside-nodeport", "host -> NodePort"))]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.6 * len(bars)))
    for i, (key, label) in enumerate((("tcp_1", "TCP 1 stream"), ("tcp_4", "TCP 4 streams"))):
        ax.barh([y + (i - 0.5) * 0.4 for y in range(len(bars))], [r.get(key, 0) for _, r in bars], height=0.4,
                label=label)
    ax.axvline(0.8, color="green", linestyle="--", label="goal 0.8")
    ax.set_yticks(list(range(len(bars))), [n for n, _ in bars])
    ax.invert_yaxis()
    ax.set_xlabel("TCP between pods and hosts outside the cluster / host<->host in the same run")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="iperf3 duration per run")
    parser.add_argument("--links", default="1500,9000", help="sandbox network MTUs, comma-separated; 1500 first")
    parser.add_argument("--quick", action="store_true", help="only the default mesh under pasta; N=1 and 2")
    parser.add_argument("--keep", action="store_true", help="leave the (last) sandbox up")
    parser.add_argument("--setups", default="", metavar="LABELS",
                        help="only these pod<->pod setups, by label, comma-separated (e.g. 'wireguard/pasta,liqo over "
                             "wireguard/pasta'); the first is measured on every route")
    parser.add_argument("--egress", default=",".join(f"{m}/{b}" for m, b in EGRESS),
                        help="egress setups (mode/backend) for the outside part")
    parser.add_argument("--parts", default="pods,outside,startup",
                        help="what to measure: pods (pod<->pod), outside (pods and hosts outside the cluster), startup")
    parser.add_argument("--out", default=str(REPO / "perf" / "results"), help="where network.json/png go")
    args = parser.parse_args()
    links = [1500] + [int(m) for m in args.links.split(",") if int(m) != 1500]
    parts = set(args.parts.split(","))
    plan = setups(links, args.quick) if "pods" in parts else []
    if args.setups:
        wanted = [w.strip() for w in args.setups.split(",")]
        unknown = set(wanted) - {s.label for s in plan}
        if unknown:
            raise SystemExit(f"unknown setups {sorted(unknown)}; known: {', '.join(s.label for s in plan)}")
        plan = [s for s in plan if s.label in wanted]
    ksi("image", "build", "--output", str(IMAGES), *(["--liqo"] if any(s.federation == "liqo" for s in plan)
                                                      or "startup" in parts and not args.quick else []))
    pods: dict[str, dict] = {}
    starts: dict[str, dict] = {}
    outside: dict[str, dict] = {}
    for link in links:
        box = fresh_sandbox(box_name := run_name())
        ksi("sandbox", "up", "-N", "4", "--mtu", str(link), "--name", box_name)
        try:
            for s in (s for s in plan if s.link == link):
                pods[s.label] = pod_to_pod(box, s, args.seconds, every_route=s == plan[0])
                if s == plan[0]:
                    print(pods[s.label]["table"], flush=True)
                v = pods[s.label]["routes"]["pod-pod"]["values"]
                print(f"  {s.label}: {v['tcp_1']:.2f} Gbit/s, p50 {v['rr_p50']:.0f} us", flush=True)
            if link == links[0] and "outside" in parts:
                chosen = [tuple(e.split("/")) for e in args.egress.split(",")]
                for mode, backend in chosen[:2] if args.quick else chosen:
                    outside[f"egress {mode}/{backend}"] = egress(box, mode, backend, args.seconds)
                    v = outside[f"egress {mode}/{backend}"]["routes"]["pod-outside"]["values"]
                    print(f"  egress {mode}/{backend}: {v['tcp_1']:.2f} Gbit/s out", flush=True)
            if link == links[0] and "startup" in parts:
                starts = {f"N={n}": startup(box, n) for n in ((1, 2) if args.quick else (1, 2, 4))}
                if not args.quick:  # a cluster per node, peered: the hub and two providers
                    starts["liqo N=3"] = startup(box, 3, "--federation liqo")
        finally:
            if not (args.keep and link == links[-1]):
                ksi("sandbox", "down", "--name", box_name)
    print("\n" + "\n".join(report(pods, starts, args.seconds)))
    if outside:
        print("\n".join(report_outside(outside)))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "network.json"), "w") as fh:
        json.dump({"pods": pods, "startup": starts, "outside": outside, "seconds": args.seconds}, fh, indent=1)
    if outside:
        plot_outside(outside, os.path.join(args.out, "egress.png"))
    if pods and starts:
        plot(pods, starts, os.path.join(args.out, "network.png"))
    print(f"\nwrote {args.out}/network.json" + (" and network.png" if pods and starts else ""))


if __name__ == "__main__":
    main()
