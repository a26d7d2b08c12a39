#!/usr/bin/env bash
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Internal to mh-up.sh: becomes PID 1 of one lab host, inside the host's own mount,
# UTS and PID namespaces. Mounts the host's private layers, names the host, then
# turns into its sshd, so that killing this process ends the whole host.
#
# Usage: mh-host-init.sh HOST_DIR HOST_NAME DIR...   (DIR: etc, opt, ... to overlay)
set -euo pipefail

host_dir=$1
host_name=$2
shift 2

for dir in "$@"; do
  mount -t overlay overlay \
    -o "lowerdir=/$dir,upperdir=$host_dir/ov/$dir/upper,workdir=$host_dir/ov/$dir/work" "/$dir"
done
# /root comes last: the lab directory may itself live under /root (molecule keeps
# its ephemeral directory there), and the overlays above need it reachable.
mount --bind "$host_dir/root" /root

hostname "$host_name"
# sshd's privilege-separation directory; /run is private to this host.
mkdir -p /run/sshd
# Check the configuration here, where its paths resolve as sshd will see them.
/usr/sbin/sshd -t
exec /usr/sbin/sshd -D -e
