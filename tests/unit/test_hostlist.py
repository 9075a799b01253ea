import pytest

from ksi_multi.errors import KsiError
from ksi_multi.hostlist import expand


@pytest.mark.parametrize(("text", "hosts"), [
    ("node01", ["node01"]),
    ("node[01-04]", ["node01", "node02", "node03", "node04"]),
    ("gpu[01-04,07],cpu[1-2]", ["gpu01", "gpu02", "gpu03", "gpu04", "gpu07", "cpu1", "cpu2"]),
    ("a,b,c", ["a", "b", "c"]),
    ("n[8-11]", ["n8", "n9", "n10", "n11"]),
    ("n[098-101]", ["n098", "n099", "n100", "n101"]),
    ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
    ("n[1-2],n2,n3", ["n1", "n2", "n3"]),
    ("x[5]", ["x5"]),
    ("node1.cluster,node2.cluster", ["node1.cluster", "node2.cluster"]),
])
def test_expand(text, hosts):
    assert expand(text) == hosts


@pytest.mark.parametrize("text", ["n[1-2", "n1-2]", "n[a-b]", "n[3-1]", "n[1,,2]"])
def test_malformed_lists_are_refused(text):
    with pytest.raises(KsiError, match="bad Slurm host list"):
        expand(text)
