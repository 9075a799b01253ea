"""`sbatch -N 4 ksi-multi.sbatch --until rendezvous`, for real, as the sandbox user."""

import json
import time

import pytest

from tests.helpers import NODES

pytestmark = pytest.mark.sandbox

PORT = 7700


def test_four_agents_register_and_status_lists_them(cluster):
    job = cluster.sbatch("--until rendezvous")
    assert cluster.wait_job(job) == "COMPLETED", cluster.job_log(job)
    status = cluster.status(job)
    assert status["state"] == "stopped"
    nodes = status["nodes"]
    assert [n["rank"] for n in nodes] == list(range(NODES))
    assert len({n["name"] for n in nodes}) == NODES
    assert len({n["host"] for n in nodes}) == NODES
    assert {n["name"]: n["host"] for n in nodes} == {h.name: h.address for h in cluster.plan.compute}
    assert set(status["timings"]) == {"doctor", "rendezvous"}
    assert json.loads(cluster.job_file(job, "timings.json")) == status["timings"]
    cli = json.loads(cluster.sh(f"ksi-multi status --job {job} --json").stdout)
    assert cli["nodes"] == nodes
    modes = cluster.sh(f"stat -c '%a %n' ~/.ksi-multi/jobs/{job} ~/.ksi-multi/jobs/{job}/*").stdout
    for line in modes.splitlines():
        mode, path = line.split(" ", 1)
        assert mode in ("700", "600"), line
    assert cluster.agent_processes() == {}


def _block_rendezvous(cluster, host):
    cluster.sh(f"iptables -A OUTPUT -p tcp --dport {PORT} -j REJECT --reject-with tcp-reset", host=host, root=True)


def _unblock(cluster, host):
    cluster.sh(f"iptables -D OUTPUT -p tcp --dport {PORT} -j REJECT --reject-with tcp-reset", host=host, root=True)


def test_missing_rank_times_out_naming_the_host(cluster):
    _block_rendezvous(cluster, "node04")
    try:
        job = cluster.sbatch(f"--until rendezvous --rendezvous-port {PORT} --rendezvous-timeout 6")
        assert cluster.wait_job(job) == "FAILED"
    finally:
        _unblock(cluster, "node04")
    status = cluster.status(job)
    assert status["state"] == "failed"
    assert "1 of 4 nodes never registered: rank 3 (node04)" in status["error"]
    worker_log = cluster.job_file(job, "agent-node04.log")
    assert f"cannot complete the rendezvous with rank 0 node01 (10.77.0.11, TCP port {PORT})" in worker_log
    assert "fix: check that node04 can reach 10.77.0.11:7700" in worker_log
    assert cluster.agent_processes() == {}


def test_scancel_during_rendezvous_leaves_no_agent(cluster):
    _block_rendezvous(cluster, "node03")
    try:
        job = cluster.sbatch(f"--until rendezvous --rendezvous-port {PORT} --rendezvous-timeout 300")
        deadline = time.monotonic() + 60
        while len(cluster.status(job).get("nodes", [])) < NODES - 1:
            assert time.monotonic() < deadline, cluster.job_log(job)
            time.sleep(0.3)
        assert cluster.status(job)["phase"] == "rendezvous"
        running = cluster.agent_processes()
        assert set(running) == {h.name for h in cluster.plan.compute}
        cluster.sh(f"scancel {job}")
        assert cluster.wait_job(job, timeout=60) == "CANCELLED"
    finally:
        _unblock(cluster, "node03")
    deadline = time.monotonic() + 15
    while cluster.agent_processes() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert cluster.agent_processes() == {}
    assert cluster.status(job)["state"] == "stopped"
