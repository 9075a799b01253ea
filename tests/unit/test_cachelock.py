import subprocess
import sys
import time

from ksi_multi.image import cachelock

HOLD = """
import sys, time
from pathlib import Path
from ksi_multi.image import cachelock
with cachelock.building(Path(sys.argv[1]), echo=lambda _m: None):
    print("holding", flush=True)
    time.sleep(1.0)
"""


def test_a_second_builder_waits_for_the_first_and_says_so(tmp_path):
    entry = tmp_path / "cache" / "dask-trixie-abc"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(entry)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    said = []
    started = time.monotonic()
    with cachelock.building(entry, echo=said.append):
        waited = time.monotonic() - started
        assert holder.poll() is not None or waited >= 0.5, "got the lock while the other builder held it"
    assert said == ["waiting for another build of dask-trixie-abc to finish ..."]
    assert holder.wait(timeout=10) == 0


def test_an_uncontended_entry_says_nothing(tmp_path):
    said = []
    with cachelock.building(tmp_path / "x", echo=said.append):
        pass
    assert said == []
