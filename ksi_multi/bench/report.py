"""`ksi-multi bench` results: iperf3's JSON read, ratios to the baselines, the table (the shape of KSI's
evaluation: bandwidth in % of the hosts' own, latency as the increase over it), markdown, differences to an
earlier run, and the plot. Pure functions over the result dictionary, which is also the JSON written."""

from __future__ import annotations

import json
from typing import Any

from ksi_multi.bench.plan import LATENCY, is_throughput, measures, streams_of, tcp, throughput
from ksi_multi.errors import KsiError

HEADS = {"udp": "UDP", "rr_p50": "RR p50", "rr_p99": "RR p99", "rr": "request-response"}


def head(measure: str) -> str:
    """A measure's column head: "TCP 4" for tcp_4."""
    streams = streams_of(measure)
    return f"TCP {streams}" if streams else HEADS[measure]


def iperf_gbps(text: str, udp: bool) -> tuple[float, float | None]:
    """Gbit/s received, and for UDP the share of datagrams lost (%), from `iperf3 -J` output."""
    try:
        end = json.loads(text)["end"]
        if udp:
            received = end.get("sum_received") or end["sum"]
            lost = end["sum"].get("lost_percent")
            return received["bits_per_second"] / 1e9, lost
        return end["sum_received"]["bits_per_second"] / 1e9, None
    except (ValueError, KeyError, TypeError) as exc:
        error = _iperf_error(text)
        raise KsiError(f"iperf3: {error or f'unreadable result ({exc})'}") from None


def _iperf_error(text: str) -> str:
    try:
        return str(json.loads(text).get("error", ""))
    except ValueError:
        return text.strip()[-300:]


def with_ratios(result: dict[str, Any]) -> dict[str, Any]:
    """Each route's values over its baseline's (throughput: the share of the hosts'; latency: the factor)."""
    by_key = {r["key"]: r for r in result["routes"]}
    for route in result["routes"]:
        base = by_key.get(route["baseline"] or route["key"], {}).get("values", {})
        route["ratios"] = {m: round(v / base[m], 4) for m, v in route["values"].items()
                           if (is_throughput(m) or m in LATENCY) and v and base.get(m)}
    return result


def _cell(route: dict[str, Any], measure: str) -> tuple[str, str]:
    value = route["values"].get(measure)
    if value is None:
        run = "rr" if measure in LATENCY else measure
        return ("failed" if run in route.get("errors", {}) else "-"), ""
    shown = f"{value:.2f}" if is_throughput(measure) else f"{value:.0f}"
    return shown, _relative(measure, route["ratios"].get(measure))


def relative(measure: str, value: float, base: float | None) -> str:
    """A value beside its baseline's: throughput as a share ("20%"), latency as an increase ("+25%")."""
    return _relative(measure, value / base if base else None)


def _relative(measure: str, ratio: float | None) -> str:
    if ratio is None:
        return ""
    return f"{ratio * 100:.0f}%" if is_throughput(measure) else f"{(ratio - 1) * 100:+.0f}%"


def _measures(result: dict[str, Any]) -> tuple[str, ...]:
    return measures(tuple(result["streams"]))


def table(result: dict[str, Any]) -> list[str]:
    heads = [head(m) for m in _measures(result)]
    labels = [r["label"] + ("" if r["baseline"] else " (baseline)") for r in result["routes"]]
    width = max(map(len, labels)) + 2
    top = f"{'path':<{width}}" + "".join(f"{h:>16}" for h in heads)
    lines = [f"ksi-multi bench, job {result['job_id']} ({', '.join(result['nodes'])}; iperf3 {result['seconds']} s, "
             f"{result['round_trips']} round trips): throughput in Gbit/s and in % of the hosts' own, "
             "request-response latency in us and its increase", "", top, "-" * len(top)]
    for label, route in zip(labels, result["routes"], strict=True):
        cells = "".join(f"{v:>9}{r:>7}" for v, r in (_cell(route, m) for m in _measures(result)))
        lines.append(f"{label:<{width}}{cells}")
    errors = [f"  {r['label']}, {head(m)}: {why}" for r in result["routes"]
              for m, why in r.get("errors", {}).items()]
    if errors:
        lines += ["", "failed measurements:", *errors]
    return lines


def markdown(result: dict[str, Any]) -> str:
    heads = [head(m) for m in _measures(result)]
    streams = ", ".join(str(n) for n in result["streams"])
    lines = [f"# ksi-multi bench, job {result['job_id']}", "",
             f"Nodes {', '.join(result['nodes'])}; iperf3 {result['seconds']} s per run, TCP with 1 and {streams} "
             f"parallel streams, {result['round_trips']} request-response round trips; {result['when']}.",
             "Throughput in Gbit/s (% of the baseline between the hosts themselves); latency in microseconds "
             "(increase over the baseline).", "",
             "| path | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for route in result["routes"]:
        cells = []
        for m in _measures(result):
            value, ratio = _cell(route, m)
            cells.append(f"{value} ({ratio})" if ratio else value)
        label = route["label"] + (" **(baseline)**" if not route["baseline"] else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Each value of this run beside the same one of an earlier run, with the change."""
    before = {r["key"]: r for r in old.get("routes", [])}
    lines = [f"compared with job {old.get('job_id', '?')} ({old.get('when', '?')}): value before -> now (change)", ""]
    width = max(len(r["label"]) for r in new["routes"]) + 2
    for route in new["routes"]:
        was = before.get(route["key"])
        if was is None:
            lines.append(f"{route['label']:<{width}}not measured before")
            continue
        cells = []
        for m in _measures(new):
            a, b = was.get("values", {}).get(m), route["values"].get(m)
            if a and b:
                cells.append(f"{head(m)} {a:.4g} -> {b:.4g} ({(b / a - 1) * 100:+.0f}%)")
        lines.append(f"{route['label']:<{width}}" + "; ".join(cells))
    return lines


def load(path) -> dict[str, Any]:
    """An earlier run's JSON, for --compare."""
    try:
        data = json.loads(open(path).read())
    except (OSError, ValueError) as exc:
        raise KsiError(f"cannot read {path}: {exc}", "give --compare the bench-*.json of an earlier run") from None
    if not isinstance(data, dict) or not isinstance(data.get("routes"), list):
        raise KsiError(f"{path} is not a ksi-multi bench result", "give --compare the bench-*.json of an earlier run")
    if isinstance(data.get("streams"), int):  # written before sweeps: one count, its runs named tcp_n
        for route in data["routes"]:
            for part in ("values", "ratios"):
                if "tcp_n" in route.get(part, {}):
                    route[part][tcp(data["streams"])] = route[part].pop("tcp_n")
        data["streams"] = [data["streams"]]
    return data


def plot(result: dict[str, Any], path) -> bool:
    """Throughput in % of the hosts' own and latency increase per route, as a PNG; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    routes = [r for r in result["routes"] if r["baseline"]]
    fig, (bw, lat) = plt.subplots(1, 2, figsize=(14, 1.5 + 0.8 * len(routes)))
    ys = range(len(routes))
    bars = throughput(tuple(result["streams"]))
    height = 0.8 / len(bars)
    for i, m in enumerate(bars):
        bw.barh([y + (i - (len(bars) - 1) / 2) * height for y in ys], [r["ratios"].get(m, 0) * 100 for r in routes],
                height=height, label=head(m))
    bw.axvline(80, color="green", linestyle="--", label="80%")
    bw.set_yticks(list(ys), [r["label"] for r in routes])
    bw.invert_yaxis()
    bw.set_xlabel("throughput, % of the hosts' own")
    bw.legend(fontsize="small")
    for i, m in enumerate(LATENCY):
        lat.barh([y + (i - 0.5) * 0.4 for y in ys], [(r["ratios"].get(m, 1) - 1) * 100 for r in routes], height=0.4,
                 label=HEADS[m])
    lat.axvline(15, color="green", linestyle="--", label="+15%")
    lat.set_yticks(list(ys), [""] * len(routes))
    lat.invert_yaxis()
    lat.set_xlabel("request-response latency, increase over the hosts' own (%)")
    lat.legend(fontsize="small")
    fig.suptitle(f"ksi-multi bench, job {result['job_id']} ({', '.join(result['nodes'])})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
