"""What `ksi-multi bench` measures: the paths through a job's cluster, each beside the path between the
hosts themselves that it is compared with (pure data, from the job's nodes)."""

from __future__ import annotations

from dataclasses import dataclass

from ksi_multi.errors import KsiError

# Throughput in Gbit/s (ratios to the baseline: higher is better): TCP with 1 stream and with each count of
# streams asked for ("tcp_4"), and UDP; latency in microseconds (the increase over the baseline, in %: lower
# is better).
LATENCY = ("rr_p50", "rr_p99")
MAX_STREAM_COUNTS = 8


def tcp(streams: int) -> str:
    return f"tcp_{streams}"


def streams_of(measure: str) -> int | None:
    """The parallel TCP streams of a measure ("tcp_4": 4); None for UDP and latency."""
    return int(measure.removeprefix("tcp_")) if measure.startswith("tcp_") else None


def throughput(streams: tuple[int, ...]) -> tuple[str, ...]:
    return (tcp(1), *(tcp(n) for n in streams), "udp")  # stream_counts: every n >= 2


def measures(streams: tuple[int, ...]) -> tuple[str, ...]:
    return throughput(streams) + LATENCY


def is_throughput(measure: str) -> bool:
    return measure == "udp" or streams_of(measure) is not None


def stream_counts(text: str) -> tuple[int, ...]:
    """`--streams 4` or a sweep `--streams 2,4,8`: the counts of parallel TCP streams, in order."""
    try:
        counts = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        counts = ()
    if not counts or not all(2 <= n <= 128 for n in counts) or len(counts) > MAX_STREAM_COUNTS:
        raise KsiError(f"bench: --streams {text!r} is not a list of stream counts",
                       f"give 1 to {MAX_STREAM_COUNTS} counts between 2 and 128, e.g. --streams 4 or --streams 2,4,8")
    return counts


@dataclass(frozen=True)
class Route:
    key: str
    label: str
    client: str  # where the measuring client runs: "host" (through srun) or "pod"
    target: str  # what it connects to: "host" (the other host's address), "pod", "service", "nodeport"
    client_node: str
    target_node: str
    baseline: str | None  # the key of the host route it is compared with; None: it is a baseline itself
    udp: bool = True  # whether UDP is measured on it (NodePorts carry TCP only)

    @property
    def is_baseline(self) -> bool:
        return self.baseline is None


def routes(a: str, b: str) -> list[Route]:
    """The routes between nodes `a` and `b` (the same node for a one-node job: the cross-node routes go)."""
    across = a != b
    base = "host-host" if across else "host-loopback"
    out = [Route("host-loopback", f"host loopback ({a})", "host", "host", a, a, None)]
    if across:
        out.append(Route("host-host", f"host<->host ({a}->{b})", "host", "host", a, b, None))
    out.append(Route("pod-pod-same", "pod<->pod, same node", "pod", "pod", a, a, "host-loopback"))
    if across:
        out.append(Route("pod-pod", "pod<->pod, across nodes", "pod", "pod", a, b, "host-host"))
    out += [Route("pod-service", "pod->Service (ClusterIP)", "pod", "service", a, b, base),
            Route("pod-outside", f"pod->outside ({b}'s host)", "pod", "host", a, b, base),
            Route("outside-nodeport", f"outside->NodePort ({a}'s host->{b})", "host", "nodeport", a, b, base,
                  udp=False)]
    return out


def runs(route: Route, streams: tuple[int, ...]) -> tuple[str, ...]:
    """What runs on the route: each throughput measure, then one request-response run (both latencies)."""
    return tuple(m for m in (*throughput(streams), "rr") if route.udp or m != "udp")


def select(chosen: list[Route], only: tuple[str, ...]) -> list[Route]:
    """The routes named (all when none are), with the baselines they are compared with, in their order."""
    if not only:
        return chosen
    unknown = set(only) - {r.key for r in chosen}
    if unknown:
        raise KsiError(f"bench: unknown route(s) {', '.join(sorted(unknown))}",
                       f"choose from: {', '.join(r.key for r in chosen)}")
    wanted = set(only) | {r.baseline for r in chosen if r.key in only and r.baseline}
    return [r for r in chosen if r.key in wanted]
