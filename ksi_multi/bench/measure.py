"""One benchmark run on a Ready job: servers up (on the hosts through srun, in pods), every measurement of
every route with a progress line, everything removed again, the result with its ratios."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ksi_multi.bench import report
from ksi_multi.bench.hosts import JobHosts
from ksi_multi.bench.plan import Route, is_throughput, routes, runs, select, streams_of
from ksi_multi.bench.pods import IPERF_PORT, PROBE_PORT, BenchPods
from ksi_multi.errors import KsiError
from ksi_multi.resources import path as resource

UDP_LENGTH = 1200  # below every mesh's MTU: no route fragments its datagrams
RETRY = 60.0  # seconds a client tries again while its server (a pod, a NodePort being opened) is not there yet
UNREACHED = ("unable to connect", "Connection refused", "ConnectionRefusedError", "No route to host")


@dataclass(frozen=True)
class Options:
    seconds: int = 5
    streams: tuple[int, ...] = (4,)  # the multi-stream TCP runs
    round_trips: int = 2000
    only: tuple[str, ...] = ()


@dataclass(frozen=True)
class Target:
    """Where a route's client connects: an address, and the iperf3 and probe ports there."""

    address: str
    iperf: int
    probe: int


class Bench:
    def __init__(self, job_id: str, nodes: list[dict], kubeconfig: Path, iperf3: Path, image: str, logs: Path,
                 options: Options, echo: Callable[[str], None], federated: bool = False) -> None:
        self.job_id, self.options, self.echo = job_id, options, echo
        self.addresses = {n["name"]: n["host"] for n in nodes}
        names = list(self.addresses)
        self.a, self.b = names[0], names[1 if len(names) > 1 else 0]
        self.iperf3 = str(iperf3)
        self.hosts = JobHosts(job_id, logs)
        self.pods = BenchPods(kubeconfig, image, federated)
        self.probe = resource("bench/probe.py").read_text()
        self.targets: dict[str, Target] = {}

    def routes(self) -> list[Route]:
        return select(routes(self.a, self.b), self.options.only)

    def run(self) -> dict[str, Any]:
        chosen = self.routes()
        try:
            self._start(chosen)
            total = sum(len(runs(r, self.options.streams)) for r in chosen)
            done = 0
            results: dict[str, dict[str, Any]] = {}
            for route in chosen:
                values: dict[str, float] = {}
                errors: dict[str, str] = {}
                for what in runs(route, self.options.streams):
                    done += 1
                    try:
                        values.update(self._measure(route, what))
                    except KsiError as exc:
                        errors[what] = exc.cause
                    self.echo(_progress(done, total, route, what, values, errors, results))
                results[route.key] = {"key": route.key, "label": route.label, "baseline": route.baseline,
                                      "client": f"{route.client} on {route.client_node}",
                                      "target": f"{route.target} on {route.target_node}",
                                      "values": values, "errors": errors}
        finally:
            self._stop()
        return report.with_ratios({
            "job_id": self.job_id, "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "nodes": sorted({self.a, self.b}), "seconds": self.options.seconds, "streams": list(self.options.streams),
            "round_trips": self.options.round_trips, "routes": list(results.values())})

    def _start(self, chosen: list[Route]) -> None:
        for host in sorted({r.target_node for r in chosen if r.client == "host" or r.target == "host"}):
            self._serve_on_host(host)
        if any(r.client == "pod" or r.target != "host" for r in chosen):
            self.echo(f"bench: pods in namespace {self.pods.namespace} on {self.a}" +
                      (f" and {self.b}" if self.b != self.a else ""))
            self.pods.create(self.a, self.b, self.probe)
            ips = self.pods.wait_running(180)
            cluster_ip, node_ports = self.pods.service()
            self.targets |= {"pod-a": Target(ips["server-a"], IPERF_PORT, PROBE_PORT),
                             "pod-b": Target(ips["server-b"], IPERF_PORT, PROBE_PORT),
                             "service": Target(cluster_ip, IPERF_PORT, PROBE_PORT),
                             "nodeport": Target(self.addresses[self.b], node_ports["iperf"], node_ports["probe"])}

    def _serve_on_host(self, host: str) -> None:
        """iperf3 and the probe's echo server on the host's own address, on ports free there (tried at random:
        the host is not this one)."""
        address = self.addresses[host]
        for _ in range(5):
            iperf, probe = (20000 + secrets.randbelow(40000) for _ in range(2))
            servers = [(self.hosts.serve(host, [self.iperf3, "-s", "-B", address, "-p", str(iperf)], f"iperf3-{host}"),
                        f"iperf3-{host}"),
                       (self.hosts.serve(host, ["python3", "-c", self.probe, "serve", address, str(probe),
                                                str(24 * 3600)], f"probe-{host}"), f"probe-{host}")]
            time.sleep(2)
            failed = [name for proc, name in servers if proc.poll() is not None]
            if not failed:
                self.targets[f"host-{host}"] = Target(address, iperf, probe)
                return
            why = "; ".join(f"{name}: {self.hosts.log_of(name)}" for name in failed)
            for proc, _ in servers:
                proc.terminate()
            if "in use" not in why:
                raise KsiError(f"bench: cannot start the servers on {host}: {why}",
                               f"check `srun --jobid {self.job_id} --overlap -w {host} true` and the hosts' iperf3 "
                               f"({self.iperf3})")
        raise KsiError(f"bench: found no free ports on {host} in 5 tries", "try again")

    def _stop(self) -> None:
        self.hosts.stop()
        try:
            self.pods.delete()
        except Exception as exc:  # the pods go with the job in any case; say so, do not hide the run's result
            self.echo(f"bench: could not delete namespace {self.pods.namespace}: {exc}")

    def _target(self, route: Route) -> Target:
        if route.target == "host":
            return self.targets[f"host-{route.target_node}"]
        if route.target == "pod":
            return self.targets["pod-a" if route.target_node == route.client_node else "pod-b"]
        return self.targets[route.target]

    def _measure(self, route: Route, what: str) -> dict[str, float]:
        """One run of iperf3 (what: tcp_1, tcp_N, udp) or of the latency probe (rr) on the route."""
        target = self._target(route)
        seconds = self.options.seconds
        if is_throughput(what):
            cmd = ["-c", target.address, "-p", str(target.iperf), "-t", str(seconds), "-J", "--connect-timeout", "5000"]
            if streams := streams_of(what):
                cmd += ["-P", str(streams)]
            if what == "udp":
                cmd += ["-u", "-b", "0", "-l", str(UDP_LENGTH)]
            text = self._client(route, ["iperf3" if route.client == "pod" else self.iperf3, *cmd], seconds + 40)
            gbps, lost = report.iperf_gbps(text, udp=what == "udp")
            return {what: round(gbps, 4)} | ({"udp_lost_percent": round(lost, 2)} if lost is not None else {})
        text = self._client(route, ["python3", "-c", self.probe, "rr", target.address, str(target.probe),
                                    str(self.options.round_trips)], 120)
        try:
            rr = json.loads(text.strip().splitlines()[-1])
            return {"rr_p50": rr["p50_us"], "rr_p99": rr["p99_us"]}
        except (ValueError, KeyError, IndexError):
            raise KsiError(f"probe: unreadable result: {text.strip()[-300:]}") from None

    def _client(self, route: Route, cmd: list[str], timeout: float) -> str:
        """The client's output; tried again while its server cannot be reached yet."""
        deadline = time.monotonic() + RETRY
        while True:
            if route.client == "pod":
                code, text = self.pods.exec("client", cmd, timeout)
            else:  # a timeout or a missing srun raises CommandError: the measurement is named failed
                done = self.hosts.run(route.client_node, cmd, timeout)
                code, text = done.returncode, done.stdout + done.stderr
            if code == 0:
                return text
            if code is None:
                raise KsiError(f"no result within {timeout:g} s")
            if not any(u in text for u in UNREACHED) or time.monotonic() > deadline:
                return text  # iperf3's JSON carries its error; the caller reports it
            time.sleep(1)


def _progress(done: int, total: int, route: Route, what: str, values: dict, errors: dict,
              results: dict[str, dict]) -> str:
    head = f"[{done:>2}/{total}] {route.label}: {report.head(what)}"
    if what in errors:
        return f"{head}: failed: {errors[what]}"
    base = results.get(route.baseline or "", {}).get("values", {})
    if is_throughput(what):
        relative = report.relative(what, values[what], base.get(what))
        return f"{head}: {values[what]:.2f} Gbit/s" + (f" ({relative} of the hosts')" if relative else "")
    relative = report.relative("rr_p50", values["rr_p50"], base.get("rr_p50"))
    return (f"{head}: p50 {values['rr_p50']:.0f} us, p99 {values['rr_p99']:.0f} us"
            + (f" ({relative} over the hosts')" if relative else ""))
