"""Which TCP goes through the egress proxy: the iptables rules the node gets (pure)."""

import subprocess

import pytest

from ksi_multi import proxy
from ksi_multi.ranges import Ranges

RANGES = Ranges()
INSIDE = proxy.inside_ranges(RANGES.pods, RANGES.services, RANGES.mesh, RANGES.node)


def test_cluster_ranges_node_network_and_loopback_stay_inside():
    assert INSIDE == ("10.244.0.0/16", "10.96.0.0/16", "10.250.0.0/16", "10.0.2.0/24", "127.0.0.0/8")


def test_rules_return_for_inside_and_local_then_redirect_tcp_from_pods_and_the_node():
    text = proxy.egress_rules(15001, INSIDE)
    lines = text.splitlines()
    assert lines[:2] == ["*nat", ":KSI-EGRESS - [0:0]"] and lines[-1] == "COMMIT"
    chain = [line for line in lines if line.startswith("-A KSI-EGRESS")]
    assert chain[:5] == [f"-A KSI-EGRESS -d {cidr} -j RETURN" for cidr in INSIDE]
    assert chain[5:] == ["-A KSI-EGRESS -m addrtype --dst-type LOCAL -j RETURN",
                         "-A KSI-EGRESS -p tcp -j REDIRECT --to-ports 15001"]
    hooks = [line.split()[1] for line in lines if line.startswith("-I ")]
    assert hooks == ["PREROUTING", "OUTPUT"]
    assert all(" -p tcp " in line and line.endswith("-j KSI-EGRESS") for line in lines if line.startswith("-I "))


def test_rules_parse_with_iptables_restore():
    """The text is what iptables-restore --test accepts (where iptables is installed, as in the node image)."""
    try:
        proc = subprocess.run(["iptables-restore", "--test", "--noflush"], input=proxy.egress_rules(15001, INSIDE),
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("iptables-restore is not installed here (the node image has it)")
    if "Permission denied" in proc.stderr or "you must be root" in proc.stderr:
        pytest.skip("iptables-restore --test needs root")
    assert proc.returncode == 0, proc.stderr
