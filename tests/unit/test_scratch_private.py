"""The job's directories under a shared /tmp: made private, or refused when someone else got there first."""

import os
import stat

import pytest

from ksi_multi import scratch
from ksi_multi.errors import KsiError


@pytest.fixture
def shared(tmp_path):
    base = tmp_path / "tmp"
    base.mkdir(mode=0o1777)
    base.chmod(0o1777)
    return base


def test_missing_directories_are_made_private(shared):
    job = shared / "ksi-multi-1500" / "12"
    scratch.ensure_private(shared, job)
    for path in (job.parent, job):
        info = os.lstat(path)
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()


def test_an_own_directory_left_open_is_closed_again(shared):
    (shared / "ksi-multi-1500").mkdir(mode=0o777)
    (shared / "ksi-multi-1500").chmod(0o777)
    scratch.ensure_private(shared, shared / "ksi-multi-1500" / "12")
    assert stat.S_IMODE(os.lstat(shared / "ksi-multi-1500").st_mode) == 0o700


def test_a_link_put_there_is_refused_and_nothing_is_written_through_it(shared, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (shared / "ksi-multi-1500").symlink_to(victim)
    with pytest.raises(KsiError, match="ksi-multi-1500 is a symbolic link, owned by"):
        scratch.ensure_private(shared, shared / "ksi-multi-1500" / "12")
    assert list(victim.iterdir()) == []


def test_a_file_in_the_way_is_refused(shared):
    (shared / "ksi-1500-12").write_text("")
    with pytest.raises(KsiError, match="ksi-1500-12 is not a directory"):
        scratch.ensure_private(shared, shared / "ksi-1500-12")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_directory_of_another_user_is_refused_naming_the_owner(shared):
    theirs = shared / "ksi-multi-1500"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 4242, 4242)
    with pytest.raises(KsiError) as err:
        scratch.ensure_private(shared, theirs / "12")
    assert f"{theirs} belongs to uid 4242, not to you" in err.value.cause
    assert not (theirs / "12").exists()
