#!/usr/bin/env bash
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Stop one lab host started by mh-up.sh, the way a host dies when its power fails:
# its sshd and every process in its PID namespace are killed at once (SIGKILL).
# Its network (netns mode) and its files stay, so other hosts find it unreachable.
# mh-down.sh uses this for every host. Exit status 0 also when the host already
# was down; 1 when a process survived.
#
# Usage: mh-stop-host.sh LAB_DIR HOST
set -uo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 LAB_DIR HOST" >&2
  exit 2
fi
lab=$(realpath -m -- "$1")
host=$2
d=$lab/hosts/$host

if [ -z "$host" ] || [[ $host == */* ]] || [ ! -d "$d" ]; then
  echo "mh-stop-host: no host '$host' in $lab" >&2
  exit 2
fi
if [ ! -f "$d/pids" ]; then
  echo "mh-stop-host: $host is not running"
  exit 0
fi

# Fields after "pid (comm) ": [0] is the state, [19] the start time.
proc_field() {
  local stat rest fields
  { stat=$(< "/proc/$1/stat"); } 2> /dev/null || return 1
  rest=${stat##*) }
  read -r -a fields <<< "$rest"
  echo "${fields[$2]}"
}

# A recorded pid counts only while it still names the process mh-up.sh started:
# after a reboot or a long time the number may belong to something else.
is_ours() {
  [ "$(proc_field "$1" 19)" = "$2" ]
}

# Zombies hold no resources; they wait for their reaper (PID 1), which may be slow.
is_running() {
  local state
  state=$(proc_field "$1" 0) || return 1
  [ "$state" != Z ]
}

targets=()
pidns=
while read -r what pid start; do
  if [ -z "$pid" ] || ! is_ours "$pid" "$start"; then
    continue
  fi
  targets+=("$pid")
  if [ "$what" = init ]; then
    pidns=$(readlink "/proc/$pid/ns/pid") || pidns=
  fi
done < "$d/pids"

# Were pidns the caller's own namespace, "every process in it" would be the machine.
if [ -n "$pidns" ] && [ "$pidns" = "$(readlink /proc/self/ns/pid)" ]; then
  echo "mh-stop-host: $host: recorded PID 1 is not in a namespace of its own; not killing anything" >&2
  exit 1
fi

# Processes of the host's PID namespace that are still alive.
members() {
  [ -n "$pidns" ] || return 0
  local link pid
  # "pid:[INODE]" as a glob: the brackets would form a character class.
  find /proc/[0-9]*/ns/pid -maxdepth 0 -lname "pid:?${pidns//[^0-9]/}?" 2> /dev/null \
    | while read -r link; do
      pid=${link#/proc/}
      pid=${pid%%/*}
      if is_running "$pid"; then echo "$pid"; fi
    done
}

left=()
if [ "${#targets[@]}" -gt 0 ]; then
  # Killing the namespace's PID 1 makes the kernel kill all its other processes;
  # unshare itself ignores SIGTERM while it waits, so only SIGKILL works.
  kill -KILL "${targets[@]}" 2> /dev/null
  for _ in $(seq 100); do
    left=()
    for pid in "${targets[@]}"; do
      is_running "$pid" && left+=("$pid")
    done
    mapfile -t -O "${#left[@]}" left < <(members)
    [ "${#left[@]}" -eq 0 ] && break
    kill -KILL "${left[@]}" 2> /dev/null
    sleep 0.05
  done
fi

if [ "${#left[@]}" -gt 0 ]; then
  echo "mh-stop-host: $host: processes survive SIGKILL: ${left[*]}" >&2
  exit 1
fi
rm -f "$d/pids"
echo "mh-stop-host: $host stopped"
