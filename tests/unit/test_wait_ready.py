import subprocess
import time

from click.testing import CliRunner

from ksi_multi.cli import main


def test_wait_ready_stops_when_the_agents_have_exited_before_any_status(tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    (tmp_path / "jobs/77").mkdir(parents=True)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["wait-ready", "--job", "77", "--timeout", "60", "--agents-pid", str(gone.pid),
                                       "--jobs-dir", str(tmp_path / "jobs")])
    assert result.exit_code != 0 and time.monotonic() - started < 10
    assert "the agents exited before the cluster was ready" in result.output


def test_wait_ready_waits_while_the_agents_run(tmp_path):
    (tmp_path / "jobs/78").mkdir(parents=True)
    result = CliRunner().invoke(main, ["wait-ready", "--job", "78", "--timeout", "2", "--agents-pid", "1",
                                       "--jobs-dir", str(tmp_path / "jobs")])
    assert result.exit_code != 0 and "not ready after 2 s" in result.output
