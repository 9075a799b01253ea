from ksi_multi import config, submit


def test_sbatch_command_passes_non_default_settings_to_the_agents(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = config.load(env={"KSI_NET_BACKEND": "slirp4netns", "KSI_RENDEZVOUS_TIMEOUT": "60"})
    cmd = submit.sbatch_command(cfg, nodes=4, time_limit="1:00:00", partition="gpu", until="rendezvous")
    assert cmd[:3] == ["sbatch", "--parsable", "--nodes=4"]
    assert f"--output={tmp_path}/.ksi-multi/jobs/slurm-%j.out" in cmd
    assert "--time=1:00:00" in cmd and "--partition=gpu" in cmd
    script = cmd.index(str(submit.batch_script()))
    args = cmd[script + 1:]
    assert args == ["--net-backend", "slirp4netns", "--rendezvous-timeout", "60.0", "--until", "rendezvous"]


def test_workload_goes_after_the_separator(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = config.load(env={})
    cmd = submit.sbatch_command(cfg, nodes=2, workload=["python3", "job.py", "--x"])
    assert cmd[-5:] == [str(submit.batch_script()), "--", "python3", "job.py", "--x"]
    import pytest

    from ksi_multi.errors import KsiError

    with pytest.raises(KsiError, match="cannot be combined with --until"):
        submit.sbatch_command(cfg, nodes=2, until="node", workload=["x"])


def test_batch_script_is_a_real_slurm_script():
    text = submit.batch_script().read_text()
    assert text.startswith("#!/bin/bash\n")
    assert "#SBATCH --ntasks-per-node=1" in text
    assert "#SBATCH --signal=B:TERM@60" in text
    assert 'ksi-multi prepare --job "$SLURM_JOB_ID" "${agent_args[@]}"' in text
    steps = [line.strip() for line in text.splitlines() if "ksi-multi " in line and not line.lstrip().startswith("#")]
    later = [line for line in steps if "ksi-multi prepare" not in line]
    assert {w for line in later for w in ("agent", "cleanup", "wait-ready") if f"ksi-multi {w}" in line} == \
        {"agent", "cleanup", "wait-ready"}
    assert all('"${job_config[@]}"' in line for line in later), "every step after prepare reads the job's config"


def test_every_passed_setting_reads_back_as_the_same_config(tmp_path, monkeypatch):
    """What submit hands the agents must load into the very config the user had (lists included)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = config.load(env={"KSI_IMAGES": "/shared/a.tar,/shared/imgs", "KSI_SCRATCH": "/local", "KSI_MESH_MTU": "1400"})
    args = submit.agent_args(cfg, None)
    flags = {args[i].removeprefix("--").replace("-", "_"): args[i + 1] for i in range(0, len(args), 2)}
    assert flags["images"] == "/shared/a.tar,/shared/imgs"
    assert config.load(env={}, flags=flags) == cfg


def test_submit_refuses_federation_liqo_without_a_liqo_build_before_sbatch(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from ksi_multi.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    images = tmp_path / "images"
    images.mkdir()
    (images / "images.json").write_text(json.dumps({"node": {"tag": "x", "archive": "node.tar"}}))
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch: reaching it would be a different error
    result = CliRunner().invoke(main, ["submit", "-N", "3", "--federation", "liqo", "--image-dir", str(images)])
    assert result.exit_code != 0
    assert "has no Liqo build" in result.output and "ksi-multi image build --liqo" in result.output, result.output
