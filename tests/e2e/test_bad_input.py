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


def test_missing_pasta(cluster, images):
    cluster.sh("chmod 0 /usr/bin/pasta /usr/bin/pasta.avx2", host=HOST, root=True)
    try:
        _fails(cluster, f"--image-dir {IMAGES}", "doctor: node03: pasta: not installed")
    finally:
        cluster.sh("chmod 755 /usr/bin/pasta /usr/bin/pasta.avx2", host=HOST, root=True)


def test_no_tun_device(cluster, images):
    cluster.sh("chmod 600 /dev/net/tun", host=HOST, root=True)
    try:
        _fails(cluster, f"--image-dir {IMAGES}", "/dev/net/tun: cannot open /dev/net/tun: Permission denied")
    finally:
        cluster.sh("chmod 666 /dev/net/tun", host=HOST, root=True)


def test_no_delegated_cgroups(cluster, images):
    cluster.sh("chown root:root /sys/fs/cgroup/memory/ksi-multi/ksiuser /sys/fs/cgroup/memory/ksi-multi/ksiuser/cgroup.procs",
               host=HOST, root=True)
    try:
        _fails(cluster, f"--image-dir {IMAGES}", "cgroup delegation: v1, no writable delegated subtree")
    finally:
        cluster.sh("chown -R ksiuser:ksiuser /sys/fs/cgroup/memory/ksi-multi/ksiuser", host=HOST, root=True)


def test_busy_api_port(cluster, images):
    cluster.sh("setsid python3 -c \"import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 6443)); s.listen(); "
               "time.sleep(120)\" hold-port >/dev/null 2>&1 < /dev/null &", host=HOST)
    try:
        _fails(cluster, f"--image-dir {IMAGES}", "port 6443/tcp: in use")
    finally:
        cluster.sh("pkill -u ksiuser -f [h]old-port || true", host=HOST)


def test_bad_config_value_exits_2_before_anything_starts(cluster):
    out = cluster.sh("ksi-multi submit -N 1 --net-backend docker", check=False)
    assert out.returncode == 2
    assert "config: net_backend: 'docker' (from --net-backend) must be one of: pasta, slirp4netns" in out.stderr
