"""The change the image build makes to wireguard-go's bind (ksi_multi/helpers/wireguard-patch)."""

from pathlib import Path

import pytest

from ksi_multi.errors import KsiError
from ksi_multi.image import helpers

MODCACHE = Path("/var/cache/ksi-multi/go/v1/gomodcache")


def test_listen_net_is_patched_once_and_unexpected_code_is_refused():
    upstream = "func listenNet(network string, port int) (*net.UDPConn, int, error) {\n" + helpers.LISTEN_NET + "\t// x\n"
    patched = helpers.patch_listen_net(upstream)
    assert "listenPacket(context.Background(), network, strconv.Itoa(port))" in patched
    assert "return nil, port, err" in patched and "ListenPacket" not in patched
    with pytest.raises(KsiError, match="not the code wireguard-patch/ was written for"):
        helpers.patch_listen_net(upstream.replace("return nil, 0, err", "return nil, 0, fmt.Errorf(\"%w\", err)"))


def test_the_pinned_wireguard_go_takes_the_patch():
    """The version in go.mod, from the module cache the image build fills (skipped before the first build)."""
    go_mod = (Path(helpers.resources.path("helpers")) / "go.mod").read_text()
    version = next(line.split()[1] for line in go_mod.splitlines() if line.strip().startswith(helpers.WIREGUARD))
    bind = MODCACHE / f"{helpers.WIREGUARD}@{version}" / "conn" / "bind_std.go"
    if not bind.exists():
        pytest.skip(f"{bind} not downloaded yet (ksi-multi image build fetches it)")
    assert "listenPacket" in helpers.patch_listen_net(bind.read_text())
