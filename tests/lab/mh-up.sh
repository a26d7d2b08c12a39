#!/usr/bin/env bash
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Start SSH "lab hosts" on this machine for multi-host Ansible tests, without
# containers, and write LAB_DIR/inventory.yml for them. See README.md beside this file.
#
# Each host is one sshd running as PID 1 of its own PID, mount and UTS namespaces,
# with private copy-on-write (overlayfs) views of /etc /opt /var /srv /run and a
# fresh /root, so a file written under /opt on one host is invisible to the other
# hosts and to the machine. Killing the recorded process ends the whole host.
#
# Settings (environment):
#   MH_HOSTS  host names, first is the primary   (default: "primary redundant")
#   MH_NET    lo: hosts share the machine's network stack, each sshd on its own
#                 loopback address 127.0.S.11, .12, ...              (default)
#             netns: each host also gets its own network namespace, a veth on
#                 bridge ekmbrS, address 127.100.S.11, .12, ... (controller side
#                 127.100.S.1), so that every host can listen on the same port
#   MH_SLOT   S above, 0-99 (default 0): labs with different slots can run at once
#
# Needs root, util-linux, iproute2, procps, openssh-server (its system service is
# not used). Writes nothing outside LAB_DIR apart from network namespaces
# (/run/netns) and links in netns mode. Re-running it restarts the lab.
set -euo pipefail
umask 022

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
overlays=(etc opt var srv run)

die() {
  echo "mh-up: $*" >&2
  exit 1
}

if [ $# -ne 1 ]; then
  echo "usage: [MH_HOSTS='primary redundant'] [MH_NET=lo|netns] [MH_SLOT=0] $0 LAB_DIR" >&2
  exit 2
fi

# Absolute and plain: the path goes into overlay mount options (',' and ':' are
# separators there) and into the YAML inventory.
lab=$(realpath -m -- "$1")
case $lab in
  / | *[!A-Za-z0-9._/+-]*) die "LAB_DIR must be a directory path of letters, digits and ._/+- only: $lab" ;;
esac
for dir in "${overlays[@]}"; do
  case $lab/ in
    /"$dir"/*) die "LAB_DIR must not be under /$dir: that directory is overlaid on every lab host" ;;
  esac
done

net=${MH_NET:-lo}
case $net in
  lo | netns) ;;
  *) die "MH_NET must be lo or netns, not '$net'" ;;
esac

slot=${MH_SLOT:-0}
[[ $slot =~ ^[0-9]{1,2}$ ]] || die "MH_SLOT must be a number from 0 to 99, not '$slot'"
slot=$((10#$slot))

read -r -a hosts <<< "${MH_HOSTS:-primary redundant}"
[ "${#hosts[@]}" -ge 1 ] || die "MH_HOSTS names no host"
[ "${#hosts[@]}" -le 32 ] || die "MH_HOSTS names more than 32 hosts"
declare -A seen=()
for h in "${hosts[@]}"; do
  [[ $h =~ ^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$ ]] \
    || die "host name '$h' is not a lower-case host name (a-z, 0-9, '-', at most 32 characters)"
  case $h in
    all | ungrouped | localhost) die "'$h' has a meaning of its own to Ansible; choose another host name" ;;
  esac
  [ -z "${seen[$h]:-}" ] || die "host name '$h' appears twice in MH_HOSTS"
  seen[$h]=1
done

[ "$(id -u)" -eq 0 ] || die "needs root (mount, unshare, ip netns)"
need() {
  command -v "$1" > /dev/null 2>&1 || die "$1 not found: install Debian's $2"
}
need unshare util-linux
need ssh-keygen openssh-client
need ssh-keyscan openssh-client
need ip iproute2
need ss iproute2
need pgrep procps
need mountpoint util-linux
[ -x /usr/sbin/sshd ] || die "/usr/sbin/sshd not found: install Debian's openssh-server"

if [ "$net" = netns ]; then
  prefix=127.100.$slot
else
  prefix=127.0.$slot
fi
bridge=ekmbr$slot
addr_of() {
  echo "$prefix.$((11 + $1))"
}

# Debian puts these in /root when it installs; the machine's own /root/.bashrc may
# run slow start-up code (pyenv) that would delay every Ansible task.
stock_bashrc=/usr/share/base-files/dot.bashrc
stock_profile=/usr/share/base-files/dot.profile
[ -f "$stock_bashrc" ] || stock_bashrc=/etc/skel/.bashrc
[ -f "$stock_profile" ] || stock_profile=/etc/skel/.profile

# A crashed or repeated run leaves hosts behind: stop them first.
if [ -e "$lab/hosts" ] || [ -e "$lab/bridge" ] || [ -e "$lab/run-netns" ]; then
  echo "mh-up: stopping what an earlier run left in $lab"
  "$here/mh-down.sh" "$lab"
fi

# Refuse to share addresses or names with another lab rather than hijack them.
if [ "$net" = lo ]; then
  listeners=$(ss -Hltn 'sport = :22' | awk '{print $4}')
  for i in "${!hosts[@]}"; do
    ip=$(addr_of "$i")
    for l in $listeners; do
      case $l in
        0.0.0.0:22 | '*:22' | "$ip:22")
          die "port 22 on $ip is taken (listener on $l): stop it, or use another MH_SLOT or MH_NET=netns" ;;
      esac
    done
  done
else
  if ip link show "$bridge" > /dev/null 2>&1; then
    die "bridge $bridge exists: another lab runs with MH_SLOT=$slot in netns mode; stop it or choose another MH_SLOT"
  fi
  for i in "${!hosts[@]}"; do
    if [ -e "/run/netns/ekm$slot-${hosts[$i]}" ] || ip link show "ekm${slot}v$i" > /dev/null 2>&1; then
      die "network namespace ekm$slot-${hosts[$i]} or link ekm${slot}v$i exists: another lab runs with MH_SLOT=$slot; stop it or choose another MH_SLOT"
    fi
  done
fi

# From here on, a failure stops whatever this run started, so nothing lingers.
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "mh-up: failed; stopping the hosts started so far" >&2
    "$here/mh-down.sh" "$lab" >&2 || true
  fi
}
trap on_exit EXIT

mkdir -p "$lab/keys" "$lab/hosts"
[ -f "$lab/keys/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C mh-lab -f "$lab/keys/id_ed25519"
: > "$lab/keys/known_hosts"

if [ "$net" = netns ]; then
  # iproute2 turns /run/netns into a mount point on first use; remember whether
  # the lab did that, so that mh-down.sh can undo it when no namespace is left.
  if [ ! -e /run/netns ]; then
    echo absent > "$lab/run-netns"
  elif ! mountpoint -q /run/netns; then
    echo directory > "$lab/run-netns"
  fi
  ip link add "$bridge" type bridge
  echo "$bridge" > "$lab/bridge"
  ip addr add "$prefix.1/24" dev "$bridge"
  # 127/8 is "martian" on any interface but lo unless route_localnet is set.
  sysctl -qw "net.ipv4.conf.$bridge.route_localnet=1"
  ip link set "$bridge" up
fi

etc_hosts=$'127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
for i in "${!hosts[@]}"; do
  etc_hosts+="$(addr_of "$i")"$'\t'"${hosts[$i]}"$'\n'
done

# "pid starttime" identifies a process even after its pid is reused.
proc_start() {
  local stat rest fields
  { stat=$(< "/proc/$1/stat"); } 2> /dev/null || return 1
  rest=${stat##*) }
  read -r -a fields <<< "$rest"
  echo "${fields[19]}"
}

for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  ip=$(addr_of "$i")
  d=$lab/hosts/$h
  etc=$d/ov/etc/upper
  for dir in "${overlays[@]}"; do
    mkdir -p "$d/ov/$dir/upper" "$d/ov/$dir/work"
    # An overlay's root takes its owner and mode from the upper directory.
    chown --reference="/$dir" "$d/ov/$dir/upper"
    chmod --reference="/$dir" "$d/ov/$dir/upper"
  done
  # Seed the host's own files straight into its /etc layer.
  install -d -m 755 "$etc/ssh"
  ssh-keygen -q -t ed25519 -N '' -C "root@$h" -f "$etc/ssh/ssh_host_ed25519_key"
  install -m 600 "$lab/keys/id_ed25519.pub" "$etc/ssh/lab_authorized_keys"
  echo "$h" > "$etc/hostname"
  printf '%s' "$etc_hosts" > "$etc/hosts"
  listen=$ip:22
  if [ "$net" = netns ]; then
    listen=0.0.0.0:22
    # The machine's resolver is unreachable from the namespace, and every lookup
    # (getfqdn in fact gathering) would wait ~10 s; this one fails at once.
    printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > "$etc/resolv.conf"
  fi
  cat > "$etc/ssh/sshd_config" << EOF
# Lab host $h, written by tests/lab/mh-up.sh
ListenAddress $listen
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/lab_authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
Subsystem sftp internal-sftp
AcceptEnv LANG LC_*
EOF
  install -d -m 700 "$d/root"
  install -m 644 "$stock_bashrc" "$d/root/.bashrc"
  install -m 644 "$stock_profile" "$d/root/.profile"

  nsexec=()
  if [ "$net" = netns ]; then
    ns=ekm$slot-$h
    veth=ekm${slot}v$i
    ip netns add "$ns"
    echo "$ns" > "$d/netns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    echo "$veth" > "$d/veth"
    ip link set "$veth" master "$bridge" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.eth0.route_localnet=1
    # No default route: anything outside the lab bridge fails at once.
    ip -n "$ns" addr add "$ip/24" dev eth0
    nsexec=(ip netns exec "$ns")
  fi

  # setsid: the host outlives this script and its terminal. --kill-child: when
  # unshare is killed, the host's PID 1 is killed, and with it every process of
  # the PID namespace (no stale sshd sessions or ControlPersist peers survive).
  setsid "${nsexec[@]}" unshare --mount --uts --pid --fork --kill-child --mount-proc --propagation private -- \
    bash "$here/mh-host-init.sh" "$d" "$h" "${overlays[@]}" > "$d/sshd.log" 2>&1 < /dev/null &
  pid=$!
  # The host is not this script's job to wait for or to report on.
  disown "$pid"
  echo "unshare $pid $(proc_start "$pid" || echo gone)" > "$d/pids"
done

host_failed() {
  echo "mh-up: host $1 $2; its log:" >&2
  sed 's/^/  /' "$lab/hosts/$1/sshd.log" >&2
  exit 1
}

for i in "${!hosts[@]}"; do
  h=${hosts[$i]}
  ip=$(addr_of "$i")
  d=$lab/hosts/$h
  read -r _ pid _ < "$d/pids"
  line=
  for _ in $(seq 200); do
    kill -0 "$pid" 2> /dev/null || host_failed "$h" "exited"
    line=$(ssh-keyscan -t ed25519 -T 1 "$ip" 2> /dev/null) || true
    [ -z "$line" ] || break
    sleep 0.05
  done
  [ -n "$line" ] || host_failed "$h" "did not answer on $ip:22 within 10 s"
  # Only our own sshd holds this key: anything else on the address is a stale host.
  read -r _ _ key <<< "$line"
  read -r _ own_key _ < "$d/ov/etc/upper/ssh/ssh_host_ed25519_key.pub"
  [ "$key" = "$own_key" ] || host_failed "$h" "is not the sshd answering on $ip:22 (another lab or sshd holds it)"
  init=$(pgrep -P "$pid") || host_failed "$h" "has no PID 1 process"
  echo "init $init $(proc_start "$init")" >> "$d/pids"
  echo "$h,$ip ${line#* }" >> "$lab/keys/known_hosts"
  echo "$ip" > "$d/address"
  echo "mh-up: $h up at $ip (pid $pid)"
done

{
  cat << EOF
---
# Written by tests/lab/mh-up.sh for the lab hosts in $lab
all:
  vars:
    ansible_user: root
    ansible_ssh_private_key_file: $lab/keys/id_ed25519
    ansible_ssh_common_args: >-
      -o UserKnownHostsFile=$lab/keys/known_hosts
      -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes
    ansible_python_interpreter: /usr/bin/python3
  children:
    ekm:
      children:
        ekm_primary:
          hosts:
EOF
  printf '            %s:\n              ansible_host: %s\n' "${hosts[0]}" "$(addr_of 0)"
  echo "        ekm_redundant:"
  if [ "${#hosts[@]}" -gt 1 ]; then
    echo "          hosts:"
    for ((i = 1; i < ${#hosts[@]}; i++)); do
      printf '            %s:\n              ansible_host: %s\n' "${hosts[$i]}" "$(addr_of "$i")"
    done
  else
    echo "          hosts: {}"
  fi
} > "$lab/inventory.yml.tmp"
mv "$lab/inventory.yml.tmp" "$lab/inventory.yml"
echo "mh-up: inventory $lab/inventory.yml"
