"""The changes the image build makes to wireguard-go (ksi_multi/helpers/wireguard-patch)."""

import shutil
from pathlib import Path

import pytest

from ksi_multi.errors import KsiError
from ksi_multi.image import helpers

MODCACHE = Path("/var/cache/ksi-multi/go/v1/gomodcache")


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
    for patch in helpers.patch_files(source):
        helpers.apply_patch(tmp_path, patch)
    bind = (tmp_path / "conn" / "bind_std.go").read_text()
    assert "listenPacket(context.Background(), network, strconv.Itoa(port))" in bind
    assert "return nil, port, err" in bind and "ListenPacket" not in bind
    assert "var ListenAddress netip.Addr" in (tmp_path / "conn" / "listenaddr_ksi.go").read_text()
    assert "var SendVectors bool" in bind
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
