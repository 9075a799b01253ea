"""`ksi-multi cleanup` on this machine with real processes: it kills what names the job's directories,
removes them, and refuses while the job's agent still runs."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ksi_multi import cleanup, config, scratch
from ksi_multi.errors import KsiError


@pytest.fixture
def job_id():
    return f"t{os.getpid()}{int(time.time() * 1000) % 100000}"


def _spawn(*args, env=None):
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", *args], env=env)


def test_cleanup_kills_job_processes_and_removes_its_directories(tmp_path, job_id):
    cfg = config.load(env={}, flags={"scratch": str(tmp_path)})
    job_scratch = scratch.job_scratch(tmp_path, job_id)
    runtime = scratch.runtime_dir(job_id)
    (job_scratch / "work").mkdir(parents=True)
    runtime.mkdir()
    left = _spawn("--uapi", str(runtime / "wg.sock"))
    other = _spawn("--uapi", str(tmp_path / "another-job.sock"))
    try:
        time.sleep(0.3)
        found = cleanup.clean(cfg, job_id)
        assert left.wait(timeout=10) == -9
        assert other.poll() is None  # not the job's: untouched
        assert any(f"process {left.pid}" in f for f in found)
        assert str(job_scratch) in found and str(runtime) in found
        assert not job_scratch.exists() and not runtime.exists()
        assert cleanup.clean(cfg, job_id) == []  # a second run finds nothing
    finally:
        for p in (left, other):
            p.kill()
            p.wait()


def test_cleanup_refuses_while_the_agent_of_the_job_runs(tmp_path, job_id):
    cfg = config.load(env={}, flags={"scratch": str(tmp_path)})
    agent = _spawn("ksi_multi", "agent", env={**os.environ, "SLURM_JOB_ID": job_id})
    try:
        time.sleep(0.3)
        with pytest.raises(KsiError, match=f"the agent of job {job_id} still runs on this host"):
            cleanup.clean(cfg, job_id)
        assert agent.poll() is None
    finally:
        agent.kill()
        agent.wait()


def test_cleanup_waits_for_the_reaper_of_the_job_before_it_starts(tmp_path, job_id):
    cfg = config.load(env={}, flags={"scratch": str(tmp_path)})
    reaper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)", "ksi_multi", "reap",
                               "--job", job_id, "--agent-pid", "1"])
    try:
        time.sleep(0.3)
        started = time.monotonic()
        assert cleanup.clean(cfg, job_id) == []
        assert reaper.poll() == 0  # it ran to its end: the cleanup waited instead of racing it
        assert time.monotonic() - started > 1
    finally:
        reaper.kill()
        reaper.wait()


def test_cleanup_removes_nothing_through_links_put_in_the_jobs_paths(tmp_path, job_id):
    cfg = config.load(env={}, flags={"scratch": str(tmp_path)})
    job_scratch = scratch.job_scratch(tmp_path, job_id)
    runtime = scratch.runtime_dir(job_id)
    victim = tmp_path / "victim"
    (victim / "podman" / "data").mkdir(parents=True)
    (victim / "keep").write_text("mine")
    job_scratch.parent.mkdir(parents=True)
    job_scratch.symlink_to(victim)  # someone pointed the job's scratch at a directory of the user's
    runtime.symlink_to(victim)
    try:
        found = cleanup.clean(cfg, job_id)
        assert (victim / "keep").read_text() == "mine" and (victim / "podman" / "data").is_dir()
        assert str(job_scratch) not in found and str(runtime) not in found
        assert job_scratch.is_symlink() and runtime.is_symlink()  # left for an admin to see
    finally:
        runtime.unlink(missing_ok=True)


REAPER = """
import sys
from ksi_multi import cleanup, config
cfg = config.load(env={}, flags={"scratch": sys.argv[1]})
print("found:", "; ".join(cleanup.watch(cfg, sys.argv[2], int(sys.argv[3]), poll=0.1)), flush=True)
"""


def test_the_reaper_cleans_up_at_once_after_a_killed_agent(tmp_path, job_id):
    job_scratch = scratch.job_scratch(tmp_path, job_id)
    runtime = scratch.runtime_dir(job_id)
    (job_scratch / "work").mkdir(parents=True)
    runtime.mkdir()
    agent = _spawn()
    left = _spawn("--uapi", str(runtime / "wg.sock"))  # what the agent had started
    reaper = subprocess.Popen([sys.executable, "-c", REAPER, str(tmp_path), job_id, str(agent.pid)],
                              stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        reaper.send_signal(signal.SIGTERM)  # meant for the agent: the reaper outlives it
        time.sleep(0.3)
        assert reaper.poll() is None and left.poll() is None  # the agent still runs: nothing is touched
        agent.kill()
        agent.wait()
        out, _ = reaper.communicate(timeout=30)
        assert left.wait(timeout=10) == -9
        assert f"process {left.pid}" in out and str(job_scratch) in out
        assert not job_scratch.exists() and not runtime.exists()
    finally:
        for p in (agent, left, reaper):
            p.kill()
            p.wait()
