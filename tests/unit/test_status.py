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
