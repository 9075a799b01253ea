import pytest

from ksi_multi import agent
from ksi_multi.errors import KsiError


def test_until_cuts_the_phase_list():
    assert agent.plan("doctor") == ["doctor"]
    assert agent.plan("rendezvous") == ["doctor", "rendezvous"]


def test_unknown_phase():
    with pytest.raises(KsiError, match="unknown phase 'nodes'") as err:
        agent.plan("nodes")
    assert "rendezvous" in err.value.fix


def test_phase_not_in_this_version_fails_before_anything_starts():
    unavailable = [p for p in agent.PHASES if p not in agent.registry()]
    if not unavailable:
        assert agent.plan(None) == list(agent.PHASES)
        return
    with pytest.raises(KsiError, match=f"phase '{unavailable[0]}' is not available"):
        agent.plan(None)
