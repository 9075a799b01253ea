"""The change the image build makes to wireguard-go's bind (ksi_multi/helpers/wireguard-patch)."""

import shutil
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


def test_the_pinned_wireguard_go_takes_every_change(tmp_path):
    """The version in go.mod, from the module cache the image build fills (skipped before the first build)."""
    source = Path(helpers.resources.path("helpers"))
    version = next(line.split()[1] for line in (source / "go.mod").read_text().splitlines()
                   if line.strip().startswith(helpers.WIREGUARD))
    module = MODCACHE / f"{helpers.WIREGUARD}@{version}"
    if not (module / "conn" / "bind_std.go").exists():
        pytest.skip(f"{module} not downloaded yet (ksi-multi image build fetches it)")
    for folder in ("conn", "tun"):
        shutil.copytree(module / folder, tmp_path / folder, copy_function=shutil.copyfile)
    bind = tmp_path / "conn" / "bind_std.go"
    bind.write_text(helpers.patch_listen_net(bind.read_text()))
    assert "listenPacket" in bind.read_text()
    for patch in helpers.patch_files(source):
        helpers.apply_patch(tmp_path, patch)
    assert "var SendVectors bool" in bind.read_text()
    assert "var PartialChecksums bool" in (tmp_path / "tun" / "checksum_partial_linux.go").read_text()


def test_the_data_path_patches_apply_in_order_and_a_stale_one_is_named(tmp_path):
    source = Path(helpers.resources.path("helpers"))
    names = [p.name for p in helpers.patch_files(source)]
    assert names == sorted(names) and {"partial-checksums.patch", "send-vectors.patch"} <= set(names)
    (tmp_path / "conn").mkdir()
    (tmp_path / "conn" / "bind_std.go").write_text("package conn\n\nfunc coalesceMessages() {}\n")
    stale = source / "wireguard-patch" / "send-vectors.patch"
    with pytest.raises(KsiError, match="send-vectors.patch does not apply") as err:
        helpers.apply_patch(tmp_path, stale)
    assert "update ksi_multi/helpers/wireguard-patch" in str(err.value.fix)
    assert (tmp_path / "conn" / "bind_std.go").read_text() == "package conn\n\nfunc coalesceMessages() {}\n"
