# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a module's ``main()`` in-process and return its result dict."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
import traceback

import pytest

from ansible.module_utils import basic

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    import contextlib

    from ansible.module_utils.common.text.converters import to_bytes

    @contextlib.contextmanager
    def patch_module_args(args):
        old = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = to_bytes(json.dumps({'ANSIBLE_MODULE_ARGS': args}))
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = old


class ModuleExit(Exception):
    def __init__(self, result, failed):
        super().__init__(result.get('msg', ''))
        self.result = result
        self.failed = failed


def _exit_json(self, **kwargs):
    kwargs.setdefault('changed', False)
    raise ModuleExit(kwargs, False)


def _fail_json(self, msg, **kwargs):
    kwargs['msg'] = msg
    kwargs['failed'] = True
    raise ModuleExit(kwargs, True)


def run_module(main, args, check_mode=False, diff=False, expect_fail=False):
    """Call ``main()`` with ``args``; return the result, asserting success or failure as expected."""
    args = dict(args)
    if check_mode:
        args['_ansible_check_mode'] = True
    if diff:
        args['_ansible_diff'] = True
    mp = pytest.MonkeyPatch()
    mp.setattr(basic.AnsibleModule, 'exit_json', _exit_json)
    mp.setattr(basic.AnsibleModule, 'fail_json', _fail_json)
    try:
        with patch_module_args(args):
            try:
                main()
            except ModuleExit as done:
                if done.failed != expect_fail:
                    raise AssertionError('module %s: %s' % ('succeeded' if not done.failed else 'failed', done.result))
                return done.result
    finally:
        mp.undo()
    raise AssertionError('module returned without exit_json/fail_json')


def _fork_child(conn, fn, args, prepare):
    try:
        if prepare is not None:
            prepare()
        conn.send(('ok', fn(*args)))
    except ModuleExit as done:
        conn.send(('exit', (done.failed, done.result)))
    except BaseException:  # pylint: disable=broad-except
        conn.send(('error', traceback.format_exc()))
    finally:
        conn.close()
        os._exit(0)


def fork_call(fn, args=(), prepare=None, kill_after=None, timeout=20):
    """``fn(*args)`` in a forked child, after ``prepare()`` there. Returns ``(kind, value)``.

    Kinds: 'ok' (the return value), 'exit' (a module's exit_json or fail_json: ``(failed, result)``),
    'error' (a traceback), 'killed' (no answer; the value is the child's exit code, ``-SIGKILL`` when
    it was killed) and 'hung' (no answer within ``timeout`` seconds; the child is then killed).
    ``kill_after``: SIGKILL the child after so many seconds.
    """
    ctx = multiprocessing.get_context('fork')
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_fork_child, args=(child, fn, args, prepare))
    proc.start()
    child.close()
    if kill_after is not None:
        time.sleep(kill_after)
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
    if not parent.poll(timeout):
        proc.kill()
        proc.join()
        return 'hung', None
    try:
        outcome = parent.recv()
    except EOFError:
        outcome = None
    proc.join()
    return outcome or ('killed', proc.exitcode)
