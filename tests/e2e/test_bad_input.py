"""Every failure a user can cause gives one clear message, a non-zero exit, and leaves nothing behind."""

import pytest

from tests.helpers import IMAGES

pytestmark = pytest.mark.sandbox

HOST = "node03"


def _fails(cluster, args, expect):
    job = cluster.sbatch(f"--until node {args}", nodes=1, slurm=f"-w {HOST}")
    assert cluster.wait_job(job, timeout=120) == "FAILED", cluster.job_log(job)
    status = cluster.status(job)
    assert status["state"] == "failed"
    assert expect in status["error"], status["error"]
    log = cluster.job_file(job, f"agent-{HOST}.log")
    assert "fix:" in log
    assert cluster.leftovers(HOST, job) == []
    return status


def test_missing_image(cluster, images):
    _fails(cluster, "--image-dir /nonexistent/images", "node: no node image")


def test_images_that_are_not_image_archives(cluster, images):
    cluster.sh("echo not an image > ~/e2e-not-an-image.tar")
    try:
        _fails(cluster, f"--image-dir {IMAGES} --images $HOME/e2e-not-an-image.tar",
               "images: /home/ksiuser/e2e-not-an-image.tar is not an image archive")
    finally:
        cluster.sh("rm -f ~/e2e-not-an-image.tar")


MEMORY = "/sys/fs/cgroup/memory/ksi-multi/ksiuser"
BROKEN = {  # what an admin's host may lack: (break it as root, restore it, the message the job must give)
    "missing pasta": ("chmod 0 /usr/bin/pasta /usr/bin/pasta.avx2", "chmod 755 /usr/bin/pasta /usr/bin/pasta.avx2",
                      "doctor: node03: pasta: not installed"),
    "no tun device": ("chmod 600 /dev/net/tun", "chmod 666 /dev/net/tun",
                      "/dev/net/tun: cannot open /dev/net/tun: Permission denied"),
    "no delegated cgroups": (f"chown root:root {MEMORY} {MEMORY}/cgroup.procs", f"chown -R ksiuser:ksiuser {MEMORY}",
                             "cgroup delegation: v1, no writable delegated subtree"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_missing_prerequisite(cluster, images, case):
    breaks, restore, expect = BROKEN[case]
    cluster.sh(breaks, host=HOST, root=True)
    try:
        _fails(cluster, f"--image-dir {IMAGES}", expect)
    finally:
        cluster.sh(restore, host=HOST, root=True)


def test_busy_api_port(cluster, images):
    cluster.sh("setsid python3 -c \"import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 6443)); s.listen(); "
               "time.sleep(120)\" hold-port >/dev/null 2>&1 < /dev/null &", host=HOST)
    try:
        _fails(cluster, f"--image-dir {IMAGES} --api-server-port 6443", "port 6443/tcp: in use")
    finally:
        cluster.sh("pkill -u ksiuser -f [h]old-port || true", host=HOST)


def test_bad_config_value_exits_2_before_anything_starts(cluster):
    out = cluster.sh("ksi-multi submit -N 1 --net-backend docker", check=False)
    assert out.returncode == 2
    assert "config: net_backend: 'docker' (from --net-backend) must be one of: pasta, slirp4netns" in out.stderr


VICTIM = "/tmp/e2e-victim"  # a directory of the job's user that another user's link points at
SQUATTED = {  # another user made the job's predictable /tmp path first: (make it as root, the message)
    "directory of another user": ("install -d -m 0777 -o nobody /tmp/ksi-multi-1500",
                                  "/tmp/ksi-multi-1500 belongs to nobody (uid 65534), not to you"),
    "link of another user": (f"ln -s {VICTIM} /tmp/ksi-multi-1500 && chown -h nobody /tmp/ksi-multi-1500",
                             "/tmp/ksi-multi-1500 is a symbolic link, owned by nobody (uid 65534)"),
}


@pytest.mark.parametrize("case", list(SQUATTED))
def test_tmp_paths_made_by_another_user_are_refused(cluster, images, case):
    make, expect = SQUATTED[case]
    cluster.sh(f"mkdir -p {VICTIM}", host=HOST)
    cluster.sh(make, host=HOST, root=True)
    try:
        status = _fails(cluster, f"--image-dir {IMAGES}", expect)
        assert "refusing to write the job there" in status["error"]
        assert cluster.sh(f"ls -A {VICTIM}", host=HOST).stdout == ""  # nothing went through the link
    finally:
        cluster.sh(f"rm -rf /tmp/ksi-multi-1500 {VICTIM}", host=HOST, root=True)


def test_scancel_while_the_node_image_loads_leaves_nothing(cluster, images):
    """A stop in the middle of podman's first command of the job (its pause process just made) as well."""
    job = cluster.sbatch(f"--image-dir {IMAGES}", nodes=1, slurm=f"-w {HOST}")
    log = f"~/.ksi-multi/jobs/{job}/agent-{HOST}.log"
    cluster.sh(f"for i in $(seq 1200); do grep -q 'phase node: start' {log} 2>/dev/null && break; sleep 0.05; done; "
               f"sleep 2; scancel {job}", timeout=120)
    assert cluster.wait_job(job, timeout=120) == "CANCELLED"
    status = cluster.status(job)
    assert status["state"] == "stopped" and "during phase node" in status["reason"], status
    cluster.assert_nothing_left(job, [HOST])
