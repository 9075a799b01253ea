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


def test_every_phase_has_its_implementation():
    assert agent.plan(None) == list(agent.PHASES)
    assert set(agent.registry()) == set(agent.PHASES)
