"""Per-run sandbox names: a live run's sandbox is never reaped, an ended run's is."""

import subprocess
import sys

from ksi_multi.sandbox import runs

HOLD = """
import sys, time
from pathlib import Path
from ksi_multi.sandbox.runs import RunName
run = RunName("t", Path(sys.argv[1]))
print(run.name, flush=True)
time.sleep(60)
"""


def test_only_sandboxes_of_ended_runs_are_reaped(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    ended = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(60)", ""), str(tmp_path)],
                           capture_output=True, text=True, check=True).stdout.strip()
    try:
        live_name = live.stdout.readline().strip()
        assert len(live_name) == len(ended) == 6 and live_name.startswith("t") and live_name != ended
        downed = []
        assert runs.reap("t", downed.append, tmp_path) == [ended] == downed
        assert runs.stale("t", tmp_path) == []  # the live run's lock is held
        assert not (tmp_path / f"{ended}.lock").exists() and (tmp_path / f"{live_name}.lock").exists()
        mine = runs.RunName("b", tmp_path)
        assert runs.stale("t", tmp_path) == [] and runs.stale("b", tmp_path) == []
        mine.release()
    finally:
        live.kill()
        live.wait()
    assert runs.stale("t", tmp_path) == [live_name]
