# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run tapecrypt.ekm code in a child process and kill it: at a named fault point of ``_files`` or after a delay."""
from __future__ import annotations

import os
import random
import signal
import time

import pytest

from ansible.module_utils import basic

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _jceks
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules import module_runner

PW = 'Fault-Suite-Store-PW'
FAST = 20  # PBE iterations: the suite is about files, not about sealing speed
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RNG = random.Random(int(os.environ.get('TAPECRYPT_FAULT_SEED', '8')))


def run(fn, *args, point=None, kill_after=None, timeout=120):
    """``fn(*args)`` in a forked child. Returns ``(outcome, value)``: 'ok', 'failed' (a module's fail_json),
    'error' (an exception), 'killed' (SIGKILL, from the fault point or after ``kill_after`` seconds) or 'hung'."""
    def arm():
        if point:
            # In a forked child: the same switch TAPECRYPT_FAULT_POINT sets at import (test_env_switch proves that).
            _files._FAULT = point
            _files._FAULT_SEEN.clear()

    kind, value = module_runner.fork_call(fn, args, prepare=arm, kill_after=kill_after, timeout=timeout)
    if kind == 'exit':  # value: (failed, result)
        return ('failed' if value[0] else 'ok'), value[1]
    if kind == 'killed':
        return ('killed', None) if value == -signal.SIGKILL else ('error', 'no answer, exit code %s' % value)
    return kind, value


def call_module(main, args, check_mode=False):
    """Run a module's ``main()`` in this process; its exit_json or fail_json raises ModuleExit."""
    args = dict(args, _ansible_check_mode=check_mode)
    mp = pytest.MonkeyPatch()
    mp.setattr(basic.AnsibleModule, 'exit_json', module_runner._exit_json)
    mp.setattr(basic.AnsibleModule, 'fail_json', module_runner._fail_json)
    try:
        with module_runner.patch_module_args(args):
            main()
    finally:
        mp.undo()
    raise AssertionError('module returned without exit_json/fail_json')


def module(main, args, check_mode=False, **kw):
    """A module in a child (see ``run``): ('ok', result), ('failed', result), ('killed', None), ..."""
    return run(call_module, main, args, check_mode, **kw)


def keystore_aliases(path, password=PW):
    """Aliases of the keystore at ``path``, or None when it is not a complete keystore."""
    try:
        with open(path, 'rb') as f:
            return set(_jceks.load(f.read(), password).aliases())
    except (OSError, _jceks.JceksError):
        return None


def leftovers(directory, allowed):
    """Names in ``directory`` that are neither in ``allowed``, nor marked (``.tapecrypt-``), nor ``.bak`` copies."""
    return sorted(n for n in os.listdir(directory)
                  if n not in allowed and not n.startswith(_files.MARK) and not n.endswith(_files.BACKUP_SUFFIX))


def marked(directory):
    return sorted(n for n in os.listdir(directory) if n.startswith(_files.MARK))


def timed(fn, *args):
    start = time.monotonic()
    fn(*args)
    return time.monotonic() - start
