import pytest

from ksi_multi import agent
from ksi_multi.errors import KsiError


def test_until_cuts_the_phase_list():
    assert agent.plan("doctor") == ["doctor"]
    assert agent.plan("rendezvous") == ["doctor", "rendezvous"]


def test_unknown_phase():
    with pytest.raises(KsiError, match="unknown phase 'nodes'") as err:
        agent.plan("nodes")
    assert "rendezvous" in err.value.fix


def test_every_phase_has_its_implementation_for_each_role():
    assert agent.plan(None) == list(agent.PHASES)
    coordinator, worker = agent.registry(coordinator=True), agent.registry(coordinator=False)
    assert list(coordinator) == list(worker) == list(agent.PHASES)
    assert {n for n in agent.PHASES if coordinator[n] is not worker[n]} == {"rendezvous", "cluster", "ready"}
    hub, provider = agent.registry(True, "liqo"), agent.registry(False, "liqo")
    assert list(hub) == list(provider) == list(agent.PHASES)
    # every node inits its own cluster; only rank 0 peers them
    assert hub["cluster"] is provider["cluster"] and hub["cluster"] not in (coordinator["cluster"], worker["cluster"])
    assert hub["ready"] is not coordinator["ready"] and provider["ready"] is worker["ready"]


AGENT_WITH_A_SLOW_TEARDOWN = """
import contextlib, sys, time
from ksi_multi import agent

class Wait:
    name = "wait"
    def execute(self, ctx):
        ctx.on_teardown("slow step", lambda: (time.sleep(0.5), open(sys.argv[1], "w").write("torn down")))
        print("holding", flush=True)
        time.sleep(60)

agent.registry = lambda coordinator=True, federation="none": {"wait": Wait}
agent.run(agent.AgentContext(config=None, slurm=None, job=None, address="", cleanup=contextlib.ExitStack()), ["wait"])
"""


@pytest.mark.parametrize("signals", [("SIGTERM",), ("SIGTERM", "SIGINT", "SIGHUP", "SIGTERM")])
def test_stop_signals_in_a_burst_do_not_cut_the_teardown_short(tmp_path, signals):
    import signal
    import subprocess
    import sys

    done = tmp_path / "done"
    proc = subprocess.Popen([sys.executable, "-c", AGENT_WITH_A_SLOW_TEARDOWN, str(done)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "holding"
    for name in signals:
        proc.send_signal(getattr(signal, name))
    assert proc.wait(timeout=120) == 0  # bounds a hang; a busy disk can stall the file write for seconds
    assert done.read_text() == "torn down"


AGENT_WITH_STATUS = """
import contextlib, sys, time
from pathlib import Path
from ksi_multi import agent
from ksi_multi.jobdir import JobDir
from ksi_multi.status import StatusFile

class Wait:
    name = "wait"
    def execute(self, ctx):
        print("holding", flush=True)
        time.sleep(60)

job = JobDir(Path(sys.argv[1]), "7")
agent.registry = lambda coordinator=True, federation="none": {"wait": Wait}
agent.run(agent.AgentContext(config=None, slurm=None, job=job, address="", cleanup=contextlib.ExitStack(),
                             status=StatusFile(job.status_file, "7")), ["wait"])
"""


@pytest.mark.parametrize(("note", "reason"), [
    (None, "stopped by SIGTERM while holding the cluster"),
    ("the job's time limit (0:59 left)\nmore", "the job's time limit (0:59 left) while holding the cluster"),
    ("\x1b[2Jcancelled\x07" + "x" * 500, "[2Jcancelled" + "x" * 186 + " while holding the cluster"),
])
def test_status_says_why_the_job_stopped(tmp_path, note, reason):
    import json
    import signal
    import subprocess
    import sys

    job = tmp_path / "7"
    job.mkdir(mode=0o700)
    if note is not None:
        (job / "stop-reason").write_text(note)
    proc = subprocess.Popen([sys.executable, "-c", AGENT_WITH_STATUS, str(tmp_path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "holding"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "stopped" and status["reason"] == reason


AGENT_ON_A_CHANNEL = """
import contextlib, sys, threading, time
from pathlib import Path
from ksi_multi import agent
from ksi_multi.errors import Aborted, KsiError
from ksi_multi.jobdir import JobDir
from ksi_multi.channel import LocalChannel
from ksi_multi.rendezvous import Rendezvous
from ksi_multi.status import StatusFile

state = Rendezvous(["node01", "node02"])

class Work:
    name = "wait"
    def execute(self, ctx):
        ctx.channel = LocalChannel(state)
        if sys.argv[2] == "fail":
            raise KsiError("boom")
        threading.Timer(0.3, lambda: ctx.abort("node02 failed in node: disk full")).start()
        time.sleep(60)

job = JobDir(Path(sys.argv[1]), "7")
agent.registry = lambda coordinator=True, federation="none": {"wait": Work}
try:
    agent.run(agent.AgentContext(config=None, slurm=None, job=job, address="", cleanup=contextlib.ExitStack(),
                                 status=StatusFile(job.status_file, "7")), ["wait"])
except (KsiError, Aborted) as exc:
    print(type(exc).__name__, exc.cause, "|", state.closed, flush=True)
"""


@pytest.mark.parametrize(("how", "printed", "error"), [
    ("fail", "KsiError boom | node01 failed in wait: boom", "wait: boom"),
    ("abort", "Aborted the job was aborted: node02 failed in node: disk full | None",
     "the job was aborted: node02 failed in node: disk full"),
])
def test_a_failure_aborts_the_others_and_an_abort_stops_this_node(tmp_path, how, printed, error):
    import json
    import subprocess
    import sys

    (tmp_path / "7").mkdir(mode=0o700)
    out = subprocess.run([sys.executable, "-c", AGENT_ON_A_CHANNEL, str(tmp_path), how], capture_output=True,
                         text=True, timeout=60)
    assert out.stdout.strip() == printed, out.stderr[-2000:]
    status = json.loads((tmp_path / "7" / "status.json").read_text())
    assert status["state"] == "failed" and status["error"] == error


AGENT_WITH_A_BROAD_EXCEPT = """
import contextlib, sys, time
from ksi_multi import agent

class Wait:
    name = "wait"
    def execute(self, ctx):
        ctx.on_teardown("mark", lambda: open(sys.argv[1], "w").write("torn down"))
        print("holding", flush=True)
        while True:
            try:  # a best-effort read, as the wait phase has many
                time.sleep(0.05)
            except Exception:
                pass

agent.registry = lambda coordinator=True, federation="none": {"wait": Wait}
agent.run(agent.AgentContext(config=None, slurm=None, job=None, address="", cleanup=contextlib.ExitStack()), ["wait"])
"""


def test_a_stop_signal_is_not_swallowed_by_a_broad_except_on_its_way(tmp_path):
    import signal
    import subprocess
    import sys

    done = tmp_path / "done"
    proc = subprocess.Popen([sys.executable, "-c", AGENT_WITH_A_BROAD_EXCEPT, str(done)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "holding"
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert done.read_text() == "torn down"


def test_phases_hand_on_typed_results():
    from ksi_multi.phases.results import ClusterUp, Joined, Member, MeshUp, Results

    results = Results()
    with pytest.raises(RuntimeError, match="phase mesh has not run"):
        _ = results.mesh_up
    results.record("doctor", None)
    results.record("rendezvous", Joined((Member(0, "node01", "10.0.0.1"),)))
    results.record("mesh", MeshUp("10.250.0.1", 1420))
    assert results.joined.members[0].hostname == "node01" and results.mesh_up.pod_mtu == 1420
    with pytest.raises(TypeError, match="phase cluster returned MeshUp, not ClusterUp"):
        results.record("cluster", MeshUp("10.250.0.1"))
    with pytest.raises(TypeError, match="phase node returned NoneType, not NodeUp"):
        results.record("node", None)
    with pytest.raises(TypeError, match="phase wait returned ClusterUp; it has no result"):
        results.record("wait", ClusterUp())
    assert results.cluster is None and results.node is None


def test_every_phase_with_a_result_type_declares_it():
    from ksi_multi.phases.results import RESULT_TYPES

    for federation in ("none", "liqo"):
        for coordinator in (True, False):
            for name, phase in agent.registry(coordinator, federation).items():
                expected = RESULT_TYPES[name].__name__ if name in RESULT_TYPES else "None"
                assert phase.execute.__annotations__["return"] == expected, (name, coordinator, federation)
