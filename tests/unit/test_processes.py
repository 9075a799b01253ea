"""Finding a job's processes by the directories on their command line, with real processes."""

import subprocess
import sys

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
