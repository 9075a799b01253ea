from pathlib import Path

import pytest
from click.testing import CliRunner

from ksi_multi import config
from ksi_multi.cli import main
from ksi_multi.errors import ConfigError


def test_defaults_without_any_source(tmp_path):
    cfg = config.load(env={}, file=None)
    assert cfg.net_backend == "pasta"
    assert cfg.rendezvous_port == 0
    assert cfg.scratch is None
    assert (cfg.mesh, cfg.mesh_mtu) == ("wireguard", 0)


def test_precedence_file_then_env_then_flags(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("net_backend: slirp4netns\nrendezvous_timeout: 10\nmesh_port: 40000\n")
    env = {"KSI_RENDEZVOUS_TIMEOUT": "20", "KSI_MESH_PORT": "41000"}
    cfg = config.load(file=f, env=env, flags={"mesh_port": "42000", "log_level": None})
    assert cfg.net_backend == "slirp4netns"      # file only
    assert cfg.rendezvous_timeout == 20.0        # env beats file
    assert cfg.mesh_port == 42000                # flag beats env
    assert cfg.log_level == "info"               # a flag left unset does not override


def test_config_file_from_env_variable(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("api-server-port: 7443\n")
    assert config.load(env={"KSI_CONFIG": str(f)}).api_server_port == 7443


@pytest.mark.parametrize("source", ["file", "env", "flag"])
def test_unknown_key_names_it_and_suggests(tmp_path, source):
    f = tmp_path / "c.yaml"
    f.write_text("net_backnd: pasta\n")
    kwargs = {"file": {"file": f, "env": {}}, "env": {"env": {"KSI_NET_BACKND": "pasta"}},
              "flag": {"env": {}, "flags": {"net_backnd": "pasta"}}}[source]
    with pytest.raises(ConfigError) as err:
        config.load(**kwargs)
    assert "unknown key 'net_backnd'" in err.value.cause
    assert "net_backend" in err.value.fix
    assert err.value.exit_code == 2


@pytest.mark.parametrize(("key", "value", "words"), [
    ("net_backend", "docker", "must be one of: pasta, slirp4netns"),
    ("rendezvous_timeout", "soon", "is not a number"),
    ("rendezvous_timeout", "-1", "greater than 0"),
    ("mesh_port", "80", "unprivileged port"),
    ("mesh_port", "1.5", "whole number"),
    ("scratch", "relative/dir", "absolute path"),
    ("mesh", "flannel", "must be one of: wireguard, wireguard-forwarded, vxlan"),
    ("mesh_mtu", "576", "0 (from the path MTU) or between 1280 and 65000"),
    ("image_cache", "-1", "must be 0 or more"),
    ("image_cache", "all", "whole number"),
])
def test_bad_values_name_key_value_and_source(key, value, words):
    var = f"KSI_{key.upper()}"
    with pytest.raises(ConfigError) as err:
        config.load(env={var: value})
    assert err.value.cause.startswith(f"config: {key}:")
    assert words in err.value.cause
    assert var in err.value.cause
    assert err.value.fix


def test_impossible_combination():
    with pytest.raises(ConfigError, match="both 7000"):
        config.load(env={"KSI_API_SERVER_PORT": "7000", "KSI_RENDEZVOUS_PORT": "7000"})


def test_broken_yaml_and_non_mapping(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("net_backend: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(file=f, env={})
    f.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        config.load(file=f, env={})


def test_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(file=tmp_path / "nope.yaml", env={})


def test_cli_reports_one_clear_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["status", "--net-backend", "docker"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("ksi-multi: error: config: net_backend: 'docker' (from --net-backend)")
    assert lines[1].strip().startswith("fix:")


def test_jobs_dir_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config.load(env={}).jobs_path() == Path(tmp_path) / ".ksi-multi" / "jobs"


def test_the_jobs_configuration_file_reads_back_to_the_same_configuration(tmp_path):
    """prepare writes the merged configuration once; every later step of the job reads it with --config."""
    import yaml

    merged = config.load(env={}, flags={"jobs_dir": str(tmp_path / "jobs"), "scratch": str(tmp_path / "scratch"),
                                        "images": f"{tmp_path}/a.tar,{tmp_path}/b.tar", "mesh_port": 51999,
                                        "rendezvous_timeout": 42.5})
    written = tmp_path / "config.yaml"
    written.write_text(yaml.safe_dump(config.as_data(merged)))
    read_back = config.load(written, env={})
    assert config.as_data(read_back) == config.as_data(merged)
    assert read_back.scratch == tmp_path / "scratch" and read_back.mesh_port == 51999
    assert read_back.images == (tmp_path / "a.tar", tmp_path / "b.tar")
    assert config.as_data(read_back) != config.as_data(config.load(env={}))
