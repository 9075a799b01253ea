"""Fixtures for the tests that run in the sandbox (root only; CI runs as root)."""

import os

import pytest

from ksi_multi.sandbox.cluster import Sandbox
from tests.helpers import IMAGES, NAME, NODES, Cluster, ksi


def pytest_collection_modifyitems(items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="the sandbox needs root (namespaces, mounts, cgroups); CI runs as root")
    for item in items:
        if "sandbox" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cluster():
    box = Sandbox(NAME)
    if box.alive():
        ksi("sandbox", "down", "--name", NAME)
    ksi("sandbox", "up", "-N", str(NODES), "--name", NAME)
    yield Cluster(box)
    ksi("sandbox", "down", "--name", NAME)
    assert box.leftovers() == []


@pytest.fixture(scope="session")
def images(cluster):
    """The node and toolbox images, built offline (cold: Go build ~10 min; warm: seconds)."""
    ksi("image", "build", "--output", str(IMAGES), timeout=3600)
    return IMAGES
