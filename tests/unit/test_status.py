import json

import pytest

from ksi_multi.errors import KsiError
from ksi_multi.jobdir import JobDir
from ksi_multi.status import StatusFile, find_job, read, render


def test_status_file_contract(tmp_path):
    job = JobDir(tmp_path, "12")
    job.create()
    st = StatusFile(job.status_file, "12")
    st.set_members([{"rank": 1, "hostname": "n2", "address": "10.0.0.2"},
                    {"rank": 0, "hostname": "n1", "address": "10.0.0.1"}])
    st.timing("doctor", 1.23456)
    data = read(job)
    assert data["state"] == "starting"
    assert data["nodes"][0] == {"name": "n1", "host": "10.0.0.1", "rank": 0, "mesh_ip": None, "ready": False,
                                 "lost": None}
    assert data["timings"] == {"doctor": 1.235}
    assert set(data) >= {"job_id", "state", "nodes", "kubeconfig", "timings"}
    with pytest.raises(ValueError):
        st.update(state="exploded")
    st.update(state="failed", error="rendezvous: timed out")
    lines = render(read(job))
    assert lines[0].startswith("job 12: failed")
    assert "error: rendezvous: timed out" in lines
    assert any(line.split()[:2] == ["0", "n1"] for line in lines)


def test_find_job_latest_and_explicit(tmp_path):
    for jid in ("9", "10", "notajob"):
        (tmp_path / jid).mkdir()
    assert find_job(tmp_path, None).job_id == "10"
    assert find_job(tmp_path, "9").job_id == "9"
    with pytest.raises(KsiError, match="no job directory for job 77"):
        find_job(tmp_path, "77")
    with pytest.raises(KsiError, match="no ksi-multi jobs"):
        find_job(tmp_path / "empty", None)
    with pytest.raises(KsiError, match="has no status yet"):
        read(JobDir(tmp_path, "9"))


def test_node_fields_merge_by_name_and_unknown_names_are_ignored(tmp_path):
    st = StatusFile(tmp_path / "status.json", "7")
    st.set_members([{"rank": 1, "hostname": "n2", "address": "10.0.0.2"},
                    {"rank": 0, "hostname": "n1", "address": "10.0.0.1"}])
    st.set_node_fields({"n2": {"lost": "its agent reports: gone", "ready": False}, "n9": {"ready": True}})
    nodes = json.loads((tmp_path / "status.json").read_text())["nodes"]
    assert [(n["name"], n["lost"]) for n in nodes] == [("n1", None), ("n2", "its agent reports: gone")]


def test_concurrent_changes_from_two_threads_are_never_lost(tmp_path, monkeypatch):
    """rank 0's wait phase and its NodePort follower change status.json at once: no update may undo another."""
    import sys
    import threading
    import time

    write = StatusFile.update

    def slow_write(self, **changes):  # widens the moment between deciding a change and writing it
        time.sleep(0.0005)
        write(self, **changes)

    monkeypatch.setattr(StatusFile, "update", slow_write)

    status = StatusFile(tmp_path / "status.json", "9")
    status.set_members([{"rank": r, "hostname": f"node0{r + 1}", "address": f"10.0.0.{r + 1}"} for r in range(2)])

    def bump(node: str, phase: str) -> None:
        for i in range(300):
            status.set_node_fields({node: {"count": i}})
            status.timing(f"{phase}{i % 7}", i)

    threads = [threading.Thread(target=bump, args=(f"node0{r + 1}", f"p{r}-")) for r in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: interleavings a busy host produces
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert [n["count"] for n in status.data["nodes"]] == [299, 299]
    assert len(status.data["timings"]) == 14
    assert json.loads((tmp_path / "status.json").read_text())["nodes"] == status.data["nodes"]


def test_a_status_left_ready_by_a_killed_agent_is_closed_as_failed_naming_it(tmp_path):
    from ksi_multi import status as status_mod
    from ksi_multi.jobdir import JobDir, write_json

    job = JobDir(tmp_path, "9")
    job.path.mkdir()
    write_json(job.status_file, {"job_id": "9", "state": "ready", "phase": "wait", "error": None, "nodes": []})
    job.log_file("node01").write_text("phase wait: start\n")  # killed: no teardown
    job.log_file("node02").write_text("teardown: start\nteardown: done in 4.1 s\n")
    error = status_mod.close_unfinished(job, 137)
    assert error == "the agent on node01 ended without its teardown (killed?); the agents' step exited with 137"
    data = job.read_json(job.status_file)
    assert data["state"] == "failed" and data["error"] == error and data["phase"] is None
    assert status_mod.close_unfinished(job, 137) is None  # a finished status is left as it is
