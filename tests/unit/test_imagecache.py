import fcntl
import os
import tomllib
from pathlib import Path

import pytest

from ksi_multi.errors import KsiError
from ksi_multi.imagecache import LAYOUT, Entry, ImageCache, cache_key, to_evict
from ksi_multi.podman import storage_conf

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def test_keeps_the_current_image_and_the_most_recently_used_others():
    entries = [Entry(A, 10, False), Entry(B, 30, False), Entry(C, 20, False), Entry(D, 40, False)]
    assert to_evict(entries, current=A, keep=2) == [B, C]  # D, the newest other, stays with A
    assert to_evict(entries, current=A, keep=4) == []
    assert sorted(to_evict(entries, current=A, keep=1)) == [B, C, D]


def test_never_evicts_an_image_a_running_job_uses():
    entries = [Entry(A, 50, False), Entry(B, 10, True), Entry(C, 20, False)]
    assert to_evict(entries, current=A, keep=1) == [C]


def test_keep_zero_still_keeps_the_image_being_provided():
    assert to_evict([Entry(A, 1, False), Entry(B, 2, False)], current=A, keep=0) == [B]


def test_cache_key_is_the_image_digest_and_nothing_else():
    assert cache_key("sha256:" + A) == A
    assert cache_key(B) == B
    for bad in ("", "sha256:xyz", "../" + A, A + "/..", "sha256:" + A.upper()):
        with pytest.raises(KsiError, match="not a sha256 digest"):
            cache_key(bad)


def test_storage_conf_reads_the_cached_store(tmp_path):
    weird = tmp_path / 'with "quote" and \\ backslash'
    conf = tomllib.loads(storage_conf(weird / "g", weird / "r", weird / "cache"))
    assert conf["storage"]["driver"] == "overlay"
    assert conf["storage"]["graphroot"] == str(weird / "g")
    assert conf["storage"]["runroot"] == str(weird / "r")
    assert conf["storage"]["options"]["additionalimagestores"] == [str(weird / "cache")]


def test_entries_see_which_images_are_held(tmp_path):
    cache = ImageCache(tmp_path / "image-cache", keep=2, trusted=tmp_path)
    for key in (A, B):
        (cache.dir / key).mkdir(parents=True)
        (cache.dir / key / ".complete").write_text("")
    (cache.dir / "not-a-digest").mkdir()
    os.symlink(tmp_path, cache.dir / C)  # a link planted in the cache is never an entry
    fd = os.open(cache.dir / f"{A}.use", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        found = {e.key: e.in_use for e in cache.entries()}
    finally:
        os.close(fd)
    assert found == {A: True, B: False}
    assert Path(cache.dir).name == LAYOUT


def test_default_cache_is_in_the_users_scratch_and_a_configured_one_is_used_as_is(tmp_path):
    default = ImageCache.of(None, 2, tmp_path)
    assert default.root == tmp_path / f"ksi-multi-{os.getuid()}" / "image-cache" and default.trusted == tmp_path
    shared = ImageCache.of(tmp_path / "shared" / "cache", 2, Path("/tmp"))
    assert shared.root == tmp_path / "shared" / "cache" and shared.trusted == tmp_path / "shared"


def test_the_containerd_seed_is_made_once_per_image_and_never_left_half_made(tmp_path):
    cache = ImageCache(tmp_path / "image-cache", keep=2, trusted=tmp_path)
    cache._provided = A
    made = []

    def broken(into: Path) -> None:
        into.mkdir()
        (into / "half").write_text("")
        raise KsiError("the seed node did not boot", "see its log")

    def make(into: Path) -> None:
        made.append(into)
        into.mkdir()
        (into / "meta.db").write_text("")

    (cache.dir / A).mkdir(parents=True)
    with pytest.raises(KsiError):
        cache.containerd_seed(None, broken)
    assert not (cache.dir / A / "containerd").exists()
    seed = cache.containerd_seed(None, make)  # what the broken attempt left goes first
    assert seed == cache.dir / A / "containerd" and (seed / "meta.db").is_file() and not (seed / "half").exists()
    assert cache.containerd_seed(None, make) == seed and len(made) == 1
    assert not (cache.dir / A / "containerd.partial").exists()
