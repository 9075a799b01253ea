"""Starting a long-running helper and waiting for what it makes, with real processes."""

import pytest

from ksi_multi.run import CommandError, start_helper, stop


def test_returns_once_the_helper_made_its_socket_and_names_the_log_when_it_dies(tmp_path):
    ready, log = tmp_path / "ready", tmp_path / "helper.log"
    proc = start_helper(["sh", "-c", f"echo starting; touch {ready}; exec sleep 30"], log, ready, "the helper", "fix")
    try:
        assert proc.poll() is None and ready.exists()
    finally:
        stop(proc)
    assert proc.returncode is not None
    with pytest.raises(CommandError, match="the helper did not start: .*port in use") as err:
        start_helper(["sh", "-c", "echo port in use >&2; exit 3"], log, tmp_path / "never", "the helper", "free it")
    assert err.value.fix == "free it"


def test_a_helper_that_hangs_is_stopped_at_the_timeout(tmp_path):
    with pytest.raises(CommandError, match="did not start"):
        start_helper(["sleep", "30"], tmp_path / "log", tmp_path / "never", "the helper", "fix", timeout=0.3)
