import os
import stat

import pytest

from ksi_multi.errors import KsiError
from ksi_multi.jobdir import JobDir, write_json


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_prepare_makes_private_dir_and_fresh_secret(tmp_path):
    job = JobDir(tmp_path / "jobs", "7")
    job.prepare()
    assert mode(job.path) == 0o700
    assert mode(job.path.parent) == 0o700
    assert mode(job.secret_file) == 0o600
    first = job.read_secret()
    assert len(first) == 64
    earlier_run = (job.endpoint_file, job.status_file, job.kubeconfig_file, job.timings_file)
    for path in earlier_run:
        write_json(path, {"from": "the run before a requeue"})
    job.log_file("node01").write_text("kept: the history of the job\n")
    job.prepare()
    assert [p.name for p in earlier_run if p.exists()] == []
    assert job.log_file("node01").exists()
    assert job.read_secret() != first


def test_secret_readable_by_others_is_refused(tmp_path):
    job = JobDir(tmp_path, "1")
    job.prepare()
    os.chmod(job.secret_file, 0o644)
    with pytest.raises(KsiError, match="readable by others") as err:
        job.read_secret()
    assert "chmod 600" in err.value.fix


def test_missing_secret_explains(tmp_path):
    job = JobDir(tmp_path, "1")
    job.create()
    with pytest.raises(KsiError, match="does not exist"):
        job.read_secret()


def test_write_json_is_atomic_and_private(tmp_path):
    target = tmp_path / "s.json"
    write_json(target, {"a": 1})
    write_json(target, {"a": 2})
    assert target.read_text().strip().endswith("}")
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
