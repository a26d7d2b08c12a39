#!/usr/bin/env bash
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Stop the lab hosts that mh-up.sh started in LAB_DIR: kill every recorded process
# (and all of its hosts' PID namespaces), remove the network namespaces, links and
# bridge that the lab recorded, then its state (hosts, keys, inventory). Touches
# only what LAB_DIR records, so another lab keeps running. Safe to run again, and
# when nothing runs. Exit status 1 when something could not be removed.
#
# Usage: mh-down.sh LAB_DIR
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ $# -ne 1 ]; then
  echo "usage: $0 LAB_DIR" >&2
  exit 2
fi
lab=$(realpath -m -- "$1")

if [ ! -e "$lab/hosts" ] && [ ! -e "$lab/bridge" ] && [ ! -e "$lab/run-netns" ]; then
  echo "mh-down: no lab in $lab"
  exit 0
fi

rc=0
for d in "$lab"/hosts/*/; do
  [ -d "$d" ] || continue
  "$here/mh-stop-host.sh" "$lab" "$(basename "$d")" || rc=1
done
if [ "$rc" -ne 0 ]; then
  # Keep the records: they are what a second attempt needs to find the survivors.
  echo "mh-down: some host processes survive; lab state kept in $lab" >&2
  exit 1
fi

for d in "$lab"/hosts/*/; do
  [ -d "$d" ] || continue
  if [ -f "$d/veth" ]; then
    veth=$(< "$d/veth")
    if ip link show "$veth" > /dev/null 2>&1; then
      ip link del "$veth" || rc=1
    fi
  fi
  if [ -f "$d/netns" ]; then
    ns=$(< "$d/netns")
    if [ -e "/run/netns/$ns" ]; then
      ip netns del "$ns" || rc=1
    fi
  fi
done
if [ -f "$lab/bridge" ]; then
  bridge=$(< "$lab/bridge")
  if ip link show "$bridge" > /dev/null 2>&1; then
    ip link del "$bridge" || rc=1
  fi
fi
if [ -f "$lab/run-netns" ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
  if mountpoint -q /run/netns; then
    umount /run/netns || rc=1
  fi
  if [ "$(< "$lab/run-netns")" = absent ]; then
    rmdir /run/netns 2> /dev/null || true
  fi
fi

# The hosts' overlays live in their own mount namespaces, gone with them. Should
# anything still be mounted below the lab, deleting would reach into it.
mounted=$(awk -v p="$lab/" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo)
if [ -n "$mounted" ]; then
  echo "mh-down: still mounted under $lab, not deleting: $mounted" >&2
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "mh-down: network of the lab not fully removed; lab state kept in $lab" >&2
  exit 1
fi
rm -rf "$lab/hosts" "$lab/keys" "$lab/bridge" "$lab/run-netns" "$lab/inventory.yml" "$lab/inventory.yml.tmp"
echo "mh-down: lab in $lab is down"
