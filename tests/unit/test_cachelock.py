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


def test_a_build_becomes_the_cache_entry_only_with_everything_it_must_produce(tmp_path):
    import pytest

    from ksi_multi.errors import KsiError

    out, partial = tmp_path / "v1-abc", tmp_path / "v1-abc.partial"
    (partial / "bin").mkdir(parents=True)
    (partial / "bin" / "liqoctl").write_text("")
    with pytest.raises(KsiError, match="the Liqo build produced no webhook"):
        cachelock.publish(partial, out, partial / "bin", ["liqoctl", "webhook"], "Liqo", str(partial))
    assert not out.exists() and not (partial / ".complete").exists()
    (partial / "bin" / "webhook").write_text("")
    out.mkdir()  # an older, incomplete entry is replaced
    cachelock.publish(partial, out, partial / "bin", ["liqoctl", "webhook"], "Liqo", str(partial))
    assert (out / ".complete").exists() and (out / "bin" / "webhook").exists() and not partial.exists()
