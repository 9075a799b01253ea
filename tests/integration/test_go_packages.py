"""The helpers' own Go tests (the plain mesh's framing and reassembly, the proxy) and those of the wireguard-go
packages that wireguard-patch/ changes (its checksums and send batching), run on the copy the image build
patched."""

import pytest

from ksi_multi import resources
from ksi_multi.cli import default_cache
from ksi_multi.image import golang, helpers
from ksi_multi.run import run

pytestmark = pytest.mark.root


def test_the_go_tests_of_the_helpers_and_of_the_patched_wireguard_go_pass(images):
    env = golang.env(default_cache())  # the image build fetched every module into this cache
    source = resources.path("helpers")
    wireguard = helpers.patched_wireguard(source, env)
    modfile = helpers.patched_modfile(source, wireguard, env)
    ours = run(["go", "test", f"-modfile={modfile}", "./..."], cwd=source, extra_env={"CGO_ENABLED": "1", **env},
               timeout=900)
    assert "ok  \tgithub.com/ksi-multi/helpers/plainmesh" in ours.stdout, ours.stdout
    patched = run(["go", "test", "./tun/", "./conn/"], cwd=wireguard, extra_env=env, timeout=900)
    assert patched.stdout.count("ok  \t") == 2, patched.stdout
