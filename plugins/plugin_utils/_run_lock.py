# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller's run lock: one ``flock`` on a file, held for the life of an ``ansible-playbook`` process.

A task cannot hold a lock itself (each task runs in a short-lived worker), so a small holder process
takes the lock for the playbook run (its "owner"), reports on its first output line, and keeps the
lock until the owner exits, whatever way it exits. ``flock(1)`` on the same file takes the same
lock, so shell wrappers and cron lines can share it. This module util is private to the collection.
"""

from __future__ import annotations

import os
import subprocess
import sys

DEFAULT_PATH = '~/.ansible/tapecrypt-ekm-run.lock'
ENV_PATH = 'TAPECRYPT_EKM_RUN_LOCK'

HOLDER = r'''
import fcntl, os, sys, time
path, owner, timeout, what = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]

def started(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None

def alive(pid, start):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return start is None or started(pid) == start

birth = started(owner)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
deadline = time.monotonic() + timeout
while True:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except BlockingIOError:
        if time.monotonic() >= deadline or not alive(owner, birth):
            with open(path) as f:
                print('busy ' + ' '.join(f.read().split())[:300], flush=True)
            sys.exit(1)
        time.sleep(0.2)
os.ftruncate(fd, 0)
os.write(fd, ('%d %d %s\n' % (owner, os.getpid(), what)).encode())
print('locked', flush=True)
os.close(1)
while alive(owner, birth):
    time.sleep(0.5)
'''


def lock_path(path):
    """The lock file: the given path, else $TAPECRYPT_EKM_RUN_LOCK, else the default; '~' expanded."""
    return os.path.expanduser(path or os.environ.get(ENV_PATH) or DEFAULT_PATH)


def current_holder(path):
    """(owner pid, holder pid, what) as the holder wrote them, or None."""
    try:
        with open(path, encoding='utf-8') as handle:
            words = handle.read().split(None, 2)
        return int(words[0]), int(words[1]), words[2].strip() if len(words) > 2 else ''
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def held_by(path, owner):
    """True when a live holder of ``owner`` (this playbook run) has the lock already."""
    holder = current_holder(path)
    return bool(holder and holder[0] == owner and _alive(holder[1]))


def acquire(path, owner, timeout, what):
    """Start a holder for ``owner``; ('locked', holder pid) or ('busy', who holds it) after at most ``timeout`` s."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700, exist_ok=True)
    proc = subprocess.Popen([sys.executable, '-c', HOLDER, path, str(owner), str(timeout), what],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, close_fds=True)
    line = proc.stdout.readline().decode('utf-8', 'replace').strip()
    proc.stdout.close()
    if line == 'locked':
        return 'locked', proc.pid
    proc.wait()
    return 'busy', line[5:] if line.startswith('busy ') else 'unknown (the lock holder said %r)' % line
