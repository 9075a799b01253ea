import pytest

from ksi_multi import slurm
from ksi_multi.errors import KsiError

ENV = {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node[01-03]", "SLURM_JOB_NUM_NODES": "3", "SLURM_NODEID": "1"}


def test_context_from_environment():
    ctx = slurm.from_env(ENV, hostname="node02")
    assert ctx.job_id == "42"
    assert ctx.rank == 1
    assert ctx.nodes == ("node01", "node02", "node03")
    assert ctx.coordinator_host == "node01"
    assert not ctx.is_coordinator


def test_rank_from_hostname_when_nodeid_missing():
    env = {k: v for k, v in ENV.items() if k != "SLURM_NODEID"}
    assert slurm.from_env(env, hostname="node01").is_coordinator


def test_outside_a_job():
    with pytest.raises(KsiError, match="not inside a Slurm job") as err:
        slurm.from_env({}, hostname="x")
    assert "srun" in err.value.fix


def test_host_not_in_nodelist():
    env = {k: v for k, v in ENV.items() if k != "SLURM_NODEID"}
    with pytest.raises(KsiError, match="not in the job's node list"):
        slurm.from_env(env, hostname="login")


def test_nodeid_disagrees_with_hostname():
    with pytest.raises(KsiError, match="SLURM_NODEID 1 is node02 but this host is node03"):
        slurm.from_env(ENV, hostname="node03")


def test_host_address_of_this_machine_is_routable():
    addr = slurm.host_address("localhost-does-not-resolve.invalid")
    assert not addr.startswith("127.")
