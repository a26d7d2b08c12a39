# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller's run lock: held for the life of its owner process, shared with flock(1), never overlapping."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _run_lock


@pytest.fixture
def owners():
    """Stand-ins for ansible-playbook processes: sleepers the test kills."""
    procs = []

    def make():
        proc = subprocess.Popen(['sleep', '600'])
        procs.append(proc)
        return proc
    yield make
    for proc in procs:
        proc.kill()
        proc.wait()


def _wait_free(path, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if subprocess.run(['flock', '-n', path, 'true'], check=False).returncode == 0:
            return True
        time.sleep(0.1)
    return False


def test_lock_is_held_until_the_owner_ends_and_second_run_waits(tmp_path, owners):
    path = str(tmp_path / 'run.lock')
    first, second = owners(), owners()
    state, holder = _run_lock.acquire(path, first.pid, 5, 'sync.yml (pid %d)' % first.pid)
    assert state == 'locked' and holder > 0
    assert _run_lock.held_by(path, first.pid)
    assert not _run_lock.held_by(path, second.pid)
    start = time.monotonic()
    state, who = _run_lock.acquire(path, second.pid, 0.6, 'verify.yml')
    assert state == 'busy' and 'sync.yml (pid %d)' % first.pid in who
    assert time.monotonic() - start >= 0.5
    first.kill()
    first.wait()
    state, _holder = _run_lock.acquire(path, second.pid, 10, 'verify.yml')
    assert state == 'locked'
    assert _run_lock.held_by(path, second.pid)


@pytest.mark.skipif(shutil.which('flock') is None, reason='util-linux flock(1) is not installed')
def test_flock_command_shares_the_lock(tmp_path, owners):
    path = str(tmp_path / 'run.lock')
    owner = owners()
    assert _run_lock.acquire(path, owner.pid, 5, 'backup.yml')[0] == 'locked'
    assert subprocess.run(['flock', '-n', path, 'true'], check=False).returncode == 1
    owner.kill()
    owner.wait()
    assert _wait_free(path)
    # And the other way round: a wrapper holding it with flock(1) makes a playbook run wait.
    wrapper = subprocess.Popen(['flock', path, 'sleep', '1.5'])
    time.sleep(0.3)
    second = owners()
    start = time.monotonic()
    assert _run_lock.acquire(path, second.pid, 10, 'sync.yml')[0] == 'locked'
    assert time.monotonic() - start >= 0.8
    wrapper.wait()


def test_waiting_run_whose_owner_died_gives_up(tmp_path, owners):
    path = str(tmp_path / 'run.lock')
    assert _run_lock.acquire(path, owners().pid, 5, 'sync.yml')[0] == 'locked'
    gone = owners()
    gone.kill()
    gone.wait()
    start = time.monotonic()
    assert _run_lock.acquire(path, gone.pid, 30, 'verify.yml')[0] == 'busy'
    assert time.monotonic() - start < 5


def test_lock_path_default_and_environment(monkeypatch):
    monkeypatch.delenv(_run_lock.ENV_PATH, raising=False)
    assert _run_lock.lock_path(None).endswith('/.ansible/tapecrypt-ekm-run.lock')
    monkeypatch.setenv(_run_lock.ENV_PATH, '/run/lock/ekm.lock')
    assert _run_lock.lock_path(None) == '/run/lock/ekm.lock'
    assert _run_lock.lock_path('/x/y.lock') == '/x/y.lock'
