#!/bin/bash
# Services of one virtual host, started by tini (PID 1): munge, then slurmctld (login) or slurmd.
# Also sets up what a site provides for ksi-multi: a delegated cgroup v1 subtree for the user.
set -u
cfg=/etc/ksi-sandbox
role=$(cat "$cfg/role.$(hostname)")
user=$(cat "$cfg/user")

cp "$cfg/hosts" /etc/hosts
rm -f /etc/resolv.conf
cp "$cfg/resolv.conf" /etc/resolv.conf
mkdir -p /etc/slurm /var/spool/slurmd /var/spool/slurmctld /var/log/slurm
cp "$cfg/slurm.conf" /etc/slurm/slurm.conf
install -m 0755 "$cfg/ksi-multi" /usr/local/bin/ksi-multi
install -o munge -g munge -m 0400 "$cfg/munge.key" /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge

setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged
for _ in $(seq 100); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.05; done

# A site's cgroup delegation (what Delegate=yes gives on cgroup v2): <hierarchy>/ksi-multi/<user>.
for c in cpu cpuacct cpuset memory devices freezer blkio pids systemd; do
  d=/sys/fs/cgroup/$c/ksi-multi
  mkdir -p "$d/$user"
  if [ "$c" = cpuset ]; then
    for sub in "$d" "$d/$user"; do
      cat /sys/fs/cgroup/cpuset/cpuset.cpus > "$sub/cpuset.cpus"
      cat /sys/fs/cgroup/cpuset/cpuset.mems > "$sub/cpuset.mems"
      echo 1 > "$sub/cgroup.clone_children"
    done
  fi
  chown -R "$user:$user" "$d/$user"
done

if [ "$role" = login ]; then
  # The site's resolver: the hosts' names from /etc/hosts, nothing forwarded anywhere.
  /usr/sbin/dnsmasq --no-resolv --no-poll --bind-interfaces --except-interface=lo --user=nobody --group=nogroup \
    --listen-address="$(awk '/^nameserver/ {print $2; exit}' /etc/resolv.conf)" --log-facility=/var/log/dnsmasq.log
  /usr/sbin/slurmctld -D -i >>/var/log/slurm/slurmctld.out 2>&1 &
else
  /usr/sbin/slurmd -D -N "$(hostname)" >>/var/log/slurm/slurmd.out 2>&1 &
fi
touch /run/ksi-sandbox.ready
exec sleep infinity
