"""Fixtures for the tests that run in the sandbox (root only; CI runs as root)."""

import os

import pytest

from ksi_multi.sandbox import runs
from ksi_multi.sandbox.cluster import Sandbox
from tests.helpers import IMAGES, NODES, Cluster, build_dist, install_wheel, ksi


def pytest_collection_modifyitems(items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (namespaces, mounts, cgroups, the shared build caches); CI runs as root")
    for item in items:
        if "sandbox" in item.keywords or "root" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    """The sdist and the wheel built from the checkout, the wheel from the sdist (as `python -m build` does)."""
    return build_dist(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed(dist, tmp_path_factory):
    """The wheel installed into a fresh virtual environment outside the checkout, as a user installs it."""
    return install_wheel(dist.wheel, tmp_path_factory.mktemp("venv"))


@pytest.fixture(scope="session")
def cluster(dist):
    for name in runs.reap("t", lambda name: ksi("sandbox", "down", "--name", name)):
        print(f"took down sandbox {name!r} of a test run that has ended")
    # This run's own sandbox (another run's, or a user's sandbox "ksi", is left alone); its name is printed
    # (`ksi-multi sandbox shell --name NAME` looks inside while the tests run).
    run = runs.RunName("t")
    print(f"sandbox of this run: {run.name}")
    box = Sandbox(run.name)
    ksi("sandbox", "up", "-N", str(NODES), "--name", run.name, "--wheel", str(dist.wheel))
    yield Cluster(box)
    ksi("sandbox", "down", "--name", run.name)
    run.release()
    assert box.leftovers() == []


@pytest.fixture(scope="session")
def images(cluster, installed):
    """The node, toolbox and workload images and the Liqo build, offline, by the wheel-installed ksi-multi (cold: Go
    builds ~20 min; warm: seconds)."""
    installed.ksi("image", "build", "--output", str(IMAGES), "--workloads", "dask,spark", "--liqo", timeout=3600)
    return IMAGES
