"""Finding a job's processes by the directories on their command line, with real processes."""

import os
import subprocess
import sys
import time

from ksi_multi import processes


def test_a_job_directory_matches_itself_and_below_never_a_longer_job_id(tmp_path):
    job12, job123 = tmp_path / "ksi-1500-12", tmp_path / "ksi-1500-123"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    mine = subprocess.Popen([*sleeper, f"--root={job12}/storage"])
    other = subprocess.Popen([*sleeper, f"{job123}/wg.sock"])
    try:
        found = processes.naming([job12])
        assert mine.pid in found and other.pid not in found
        assert {mine.pid, other.pid} <= processes.naming([job12, job123])
        assert processes.end([mine.pid], grace=0.2) == [mine.pid]
        assert mine.wait(timeout=5) == -9 and other.poll() is None
    finally:
        other.kill()
        mine.kill()


def test_processes_are_found_by_their_environment_whatever_their_command_line(tmp_path):
    runtime = str(tmp_path / "ksi-1500-12")
    env = {**os.environ, "XDG_RUNTIME_DIR": runtime}
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             env={**os.environ, "XDG_RUNTIME_DIR": runtime + "3"})
    try:
        deadline = time.monotonic() + 5
        while mine.pid not in processes.with_environment("XDG_RUNTIME_DIR", runtime) and time.monotonic() < deadline:
            time.sleep(0.05)
        found = processes.with_environment("XDG_RUNTIME_DIR", runtime)
        assert mine.pid in found and other.pid not in found and os.getpid() not in found
    finally:
        for p in (mine, other):
            p.kill()
            p.wait()
