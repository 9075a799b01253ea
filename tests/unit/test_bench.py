"""`ksi-multi bench`: the routes, iperf3's results, ratios, the table, markdown and comparisons (pure logic)."""

import json

import pytest

from ksi_multi.bench import report
from ksi_multi.bench.command import ready_nodes
from ksi_multi.bench.plan import routes, runs, select, stream_counts
from ksi_multi.errors import KsiError


def test_routes_between_two_nodes_each_beside_a_host_baseline_measured_in_the_same_run():
    chosen = routes("node01", "node02")
    keys = [r.key for r in chosen]
    assert keys == ["host-loopback", "host-host", "pod-pod-same", "pod-pod", "pod-service", "pod-outside",
                    "outside-nodeport"]
    baselines = {r.key for r in chosen if r.is_baseline}
    assert baselines == {"host-loopback", "host-host"}
    assert all(r.baseline in baselines for r in chosen if not r.is_baseline)
    by_key = {r.key: r for r in chosen}
    assert by_key["pod-pod-same"].baseline == "host-loopback" and by_key["pod-pod"].baseline == "host-host"
    assert (by_key["pod-pod"].client_node, by_key["pod-pod"].target_node) == ("node01", "node02")
    assert "udp" not in runs(by_key["outside-nodeport"], (4,))
    assert runs(by_key["pod-pod"], (4,)) == ("tcp_1", "tcp_4", "udp", "rr")
    assert runs(by_key["pod-pod"], (2, 8)) == ("tcp_1", "tcp_2", "tcp_8", "udp", "rr")
    # every baseline comes before the routes compared with it (the progress lines show ratios at once)
    assert all(keys.index(r.baseline) < keys.index(r.key) for r in chosen if r.baseline)


def test_a_one_node_job_has_no_cross_node_routes_and_compares_with_the_hosts_loopback():
    chosen = routes("node01", "node01")
    assert "pod-pod" not in {r.key for r in chosen} and "host-host" not in {r.key for r in chosen}
    assert {r.baseline for r in chosen if r.baseline} == {"host-loopback"}


def test_only_takes_the_routes_named_with_their_baselines():
    chosen = select(routes("a", "b"), ("pod-pod", "pod-pod-same"))
    assert [r.key for r in chosen] == ["host-loopback", "host-host", "pod-pod-same", "pod-pod"]
    with pytest.raises(KsiError, match="unknown route.*pod-to-pod") as err:
        select(routes("a", "b"), ("pod-to-pod",))
    assert "pod-pod" in err.value.fix


def _iperf(bps: float, udp: bool = False, lost: float = 0.0) -> str:
    if udp:  # iperf3 3.18: the receiver's view in sum_received, losses in sum
        return json.dumps({"end": {"sum": {"bits_per_second": bps * 2, "lost_percent": lost},
                                   "sum_received": {"bits_per_second": bps}}})
    return json.dumps({"end": {"sum_sent": {"bits_per_second": bps * 1.01}, "sum_received": {"bits_per_second": bps}}})


def test_iperf3_results_are_read_as_received_gbits():
    assert report.iperf_gbps(_iperf(2.5e9), udp=False) == (2.5, None)
    assert report.iperf_gbps(_iperf(1e9, udp=True, lost=12.5), udp=True) == (1.0, 12.5)
    with pytest.raises(KsiError, match="iperf3: unable to connect to server"):
        report.iperf_gbps(json.dumps({"start": {}, "error": "unable to connect to server: Connection refused"}),
                          udp=False)
    with pytest.raises(KsiError, match="srun: error: Unable to create step"):
        report.iperf_gbps("srun: error: Unable to create step for job 7", udp=False)


def _result() -> dict:
    def route(key, baseline, **values):
        return {"key": key, "label": key, "baseline": baseline, "values": values, "errors": {}}

    return report.with_ratios({
        "job_id": "7", "when": "2026-12-02T06:00:00+00:00", "nodes": ["node01", "node02"], "seconds": 5,
        "streams": [4], "round_trips": 2000,
        "routes": [route("host-host", None, tcp_1=10.0, tcp_4=12.0, udp=4.0, rr_p50=40.0, rr_p99=80.0),
                   route("pod-pod", "host-host", tcp_1=2.0, tcp_4=3.0, udp=1.0, rr_p50=50.0, rr_p99=120.0)]})


def test_ratios_are_shares_of_the_baseline_and_latency_factors():
    result = _result()
    assert result["routes"][0]["ratios"] == {"tcp_1": 1.0, "tcp_4": 1.0, "udp": 1.0, "rr_p50": 1.0, "rr_p99": 1.0}
    assert result["routes"][1]["ratios"] == {"tcp_1": 0.2, "tcp_4": 0.25, "udp": 0.25, "rr_p50": 1.25, "rr_p99": 1.5}


def test_the_table_shows_values_with_shares_and_latency_increases_and_names_failures():
    result = _result()
    result["routes"][1]["values"].pop("udp")
    result["routes"][1]["errors"]["udp"] = "iperf3: unable to connect"
    report.with_ratios(result)
    lines = report.table(result)
    head = next(line for line in lines if line.startswith("path"))
    assert "TCP 4" in head and "RR p99" in head
    row = next(line for line in lines if line.startswith("pod-pod"))
    assert row.split() == ["pod-pod", "2.00", "20%", "3.00", "25%", "failed", "50", "+25%", "120", "+50%"]
    assert next(line for line in lines if line.startswith("host-host")).startswith("host-host (baseline)")
    assert "  pod-pod, UDP: iperf3: unable to connect" in lines
    md = report.markdown(result)
    assert "| pod-pod | 2.00 (20%) | 3.00 (25%) | failed | 50 (+25%) | 120 (+50%) |" in md


def test_compare_prints_each_value_beside_the_earlier_one():
    old, new = _result(), _result()
    new["routes"][1]["values"]["tcp_1"] = 3.0
    lines = report.compare(old, new)
    pod = next(line for line in lines if line.startswith("pod-pod"))
    assert "TCP 1 2 -> 3 (+50%)" in pod and "TCP 4 3 -> 3 (+0%)" in pod


def test_compare_refuses_what_is_no_bench_result(tmp_path):
    other = tmp_path / "status.json"
    other.write_text(json.dumps({"state": "ready"}))
    with pytest.raises(KsiError, match="is not a ksi-multi bench result"):
        report.load(other)
    with pytest.raises(KsiError, match="cannot read"):
        report.load(tmp_path / "missing.json")


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    assert report.plot(_result(), tmp_path / "bench.png")
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_only_a_ready_job_is_benched_and_lost_nodes_are_left_out():
    with pytest.raises(KsiError, match="job 7 is not Ready: its state is starting \\(phase cluster\\)") as err:
        ready_nodes("7", {"state": "starting", "phase": "cluster", "nodes": []})
    assert "wait-ready --job 7" in err.value.fix
    nodes = [{"name": "node02", "host": "10.0.0.2", "rank": 1, "ready": True, "lost": None},
             {"name": "node01", "host": "10.0.0.1", "rank": 0, "ready": True},
             {"name": "node03", "host": "10.0.0.3", "rank": 2, "ready": True, "lost": "container died"}]
    assert [n["name"] for n in ready_nodes("7", {"state": "ready", "nodes": nodes})] == ["node01", "node02"]


def test_streams_take_one_count_or_a_sweep_and_refuse_anything_else():
    assert stream_counts("4") == (4,)
    assert stream_counts("8,2, 4") == (2, 4, 8)
    for bad in ("1", "0,4", "four", "", "2,3,4,5,6,7,8,9,10", "200"):
        with pytest.raises(KsiError, match="is not a list of stream counts") as err:
            stream_counts(bad)
        assert "--streams 2,4,8" in err.value.fix


def test_a_sweep_gets_a_column_per_count_in_the_table_markdown_and_plot(tmp_path):
    result = _result()
    result["streams"] = [2, 4]
    for route, value in zip(result["routes"], (11.0, 2.5), strict=True):
        route["values"]["tcp_2"] = value
    report.with_ratios(result)
    lines = report.table(result)
    head = next(line for line in lines if line.startswith("path"))
    assert head.split()[1:7] == ["TCP", "1", "TCP", "2", "TCP", "4"]
    row = next(line for line in lines if line.startswith("pod-pod"))
    assert row.split()[1:7] == ["2.00", "20%", "2.50", "23%", "3.00", "25%"]
    assert "| TCP 1 | TCP 2 | TCP 4 | UDP |" in report.markdown(result)
    pytest.importorskip("matplotlib")
    assert report.plot(result, tmp_path / "sweep.png")


def test_an_earlier_result_with_one_count_compares_with_a_sweep(tmp_path):
    old = _result()
    for route in old["routes"]:  # the format before sweeps
        route["values"]["tcp_n"] = route["values"].pop("tcp_4")
    old["streams"] = 4
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = report.load(tmp_path / "old.json")
    assert loaded["streams"] == [4] and "tcp_4" in loaded["routes"][1]["values"]
    new = _result()
    new["streams"] = [2, 4]
    new["routes"][1]["values"]["tcp_2"] = 2.2
    pod = next(line for line in report.compare(loaded, new) if line.startswith("pod-pod"))
    assert "TCP 4 3 -> 3 (+0%)" in pod and "TCP 2" not in pod  # not measured before: no change to show
