#!/bin/bash
# PID 1 of one virtual host, run by the host machine's bash inside fresh mount/UTS/IPC/PID/cgroup
# namespaces and the host's network namespace. Builds the host's root (overlay over the shared
# userland), its own /dev, /proc, /sys and cgroup v1 view, pivots into it and starts its services.
set -euo pipefail
: "${ROOTFS:?}" "${STATE:?}" "${CONFIG:?}" "${HOME_DIR:?}" "${REPO?}" "${SHARED:?}" "${HOST_NAME:?}"
new=$STATE/root

mount --make-rprivate /
hostname "$HOST_NAME"
mount -t overlay overlay -o "lowerdir=$ROOTFS,upperdir=$STATE/upper,workdir=$STATE/work" "$new"

# Own /dev: the devices a compute node offers rootless containers (tun and fuse usable by users).
mount -t tmpfs -o mode=755,nosuid dev "$new/dev"
mknod_() { mknod -m "$1" "$new/dev/$2" c "$3" "$4"; }
mknod_ 666 null 1 3; mknod_ 666 zero 1 5; mknod_ 666 full 1 7
mknod_ 666 random 1 8; mknod_ 666 urandom 1 9; mknod_ 666 tty 5 0
mkdir -p "$new/dev/net" "$new/dev/pts" "$new/dev/shm" "$new/dev/mqueue"
mknod_ 666 net/tun 10 200; mknod_ 666 fuse 10 229
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$new/dev/pts"
ln -s pts/ptmx "$new/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$new/dev/shm"
mount -t mqueue mqueue "$new/dev/mqueue"
ln -s /proc/self/fd "$new/dev/fd"
for i in 0 1 2; do ln -s "/proc/self/fd/$i" "$new/dev/$(echo stdin stdout stderr | cut -d' ' -f$((i + 1)))"; done

mount -t tmpfs -o mode=755,nosuid,nodev run "$new/run"
mount --bind "$STATE/tmp" "$new/tmp"                 # node-local scratch
mount --bind "$HOME_DIR" "$new/home"                 # the shared home filesystem
mkdir -p "$new/etc/ksi-sandbox"
mount --bind "$CONFIG" "$new/etc/ksi-sandbox"
mount -o remount,bind,ro "$new/etc/ksi-sandbox"
mkdir -p "$new$SHARED"                               # shared software storage (image tarballs), read-only
mount --bind "$SHARED" "$new$SHARED"
mount -o remount,bind,ro "$new$SHARED"
if [ -n "$REPO" ]; then                              # the checkout, at the same path as outside
  mkdir -p "$new$REPO"
  mount --bind "$REPO" "$new$REPO"
  mount -o remount,bind,ro "$new$REPO"
fi

cd "$new"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p "/sys/fs/cgroup/$c"
  mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
done
mkdir -p /sys/fs/cgroup/systemd
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
umount -l /.oldroot
rmdir /.oldroot
mount --make-rshared /
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec /usr/bin/tini -s -- /bin/bash /etc/ksi-sandbox/services.sh
