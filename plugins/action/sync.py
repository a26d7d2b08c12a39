# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller half of ``tapecrypt.ekm.sync``: reach the primary, ask both servers, move changed files.

The task runs against the redundant server. The primary is reached inside the same task with a
second connection built from its inventory variables, the way ``delegate_to`` builds one
(``plugin_utils/_delegation.py``, the one place that uses ansible-core's private APIs), and the
module runs there in read-only phases. The decisions are made by ``plugin_utils/_sync_plan.py``.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _sync
from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _delegation, _sync_plan

MODULE = 'tapecrypt.ekm.sync'
FILE_NAMES = ('keystore', 'keygroups', 'drivetable')


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        spec = dict(_sync.ARGUMENT_SPEC, **FILE_COMMON_ARGUMENTS)
        if _sync.PHASE_KEY in self._task.args:
            result.update(failed=True, msg='%s is not an option of %s: it carries the phases this action plugin runs on '
                                           'both servers, and only the plugin sets it. Remove it from the task. Nothing '
                                           'was changed.' % (_sync.PHASE_KEY, MODULE))
            return result
        try:
            dummy, args = self.validate_argument_spec(argument_spec=spec, required_by=_sync.REQUIRED_BY)
            self._check_primary(args['primary'], task_vars)
        except AnsibleError as exc:
            result.update(failed=True, msg=to_text(exc))
            return result
        # Options the user gave, passed through to each server's module run (with that server's paths).
        user_args = {k: v for k, v in self._task.args.items() if k in spec}
        handler = None
        try:
            try:
                handler, primary_vars = _delegation.action_for_host(self, args['primary'], task_vars)
            except AnsibleError as exc:
                result.update(failed=True, msg='Cannot set up the connection to the primary %s from its inventory variables: '
                                               '%s. Nothing was changed.' % (args['primary'], to_text(exc)))
                return result
            run = _sync_plan.Sync(
                self._caller(handler, primary_args(args), primary_vars, 'the primary %s' % args['primary'], None),
                self._caller(self, redundant_args(user_args), task_vars, 'this redundant server', result),
                self._transfer, args['primary'], force=args['force'], check_mode=bool(self._task.check_mode),
                diff=bool(self._task.diff), with_attributes=any(args.get(k) is not None for k in _sync.ATTRIBUTE_OPTIONS))
            try:
                result.update(run.run())
            except _sync.SyncError as exc:
                result.update(exc.result)
                result.update(failed=True, msg=to_text(exc))
        finally:
            if handler is not None:
                _delegation.close(handler)
            _delegation.remove_tmp(self)
        return result

    @staticmethod
    def _check_primary(primary, task_vars):
        if primary == task_vars.get('inventory_hostname'):
            raise AnsibleError('primary is %s, the host this task runs against: run tapecrypt.ekm.sync against the '
                               'redundant servers, with primary naming the primary.' % primary)
        if primary not in (task_vars.get('hostvars') or {}):
            raise AnsibleError('primary %s is not a host in the inventory; name the primary EKM server by its inventory '
                               'hostname.' % primary)

    def _caller(self, action, args, task_vars, where, result):
        """A function that runs one phase of the module on one server.

        ``result`` (the redundant's) collects interpreter facts; without it the server is the
        primary, where every phase only reads, so a failure there has changed nothing.
        """
        def call(phase):
            res = self._call(action, args, phase, task_vars, where, read_only=result is None)
            if result is not None and res.get('ansible_facts'):
                # Interpreter discovery on the redundant; the primary's is not this host's to keep.
                result.setdefault('ansible_facts', {}).update(res['ansible_facts'])
            return res
        return call

    @staticmethod
    def _call(action, module_args, phase, task_vars, where, read_only):
        """Run one phase (``phase``, the module's request) of the module with ``action``'s connection; failures
        become SyncError.

        The module's own failures carry complete messages (and, from an install, what changed);
        only a module that could not run at all is described here.
        """
        unchanged = ' Nothing was changed.' if read_only else ''
        try:
            res = _delegation.run_module(action, MODULE, module_args, task_vars, internal={_sync.PHASE_KEY: phase})
        except AnsibleError as exc:
            raise _sync.SyncError('Cannot run the sync on %s: %s.%s' % (where, to_text(exc).rstrip('.'), unchanged))
        if res.get('unreachable') or (res.get('failed') and _delegation.module_crashed(res)):
            message = 'Cannot run the sync on %s: %s' % (where, to_text(res.get('msg') or 'unreachable').rstrip('.'))
            if res.get('module_stderr'):
                message += ' (%s)' % to_text(res['module_stderr']).strip()[-500:]
            raise _sync.SyncError(message + '.' + unchanged)
        if res.get('failed'):
            # What an install that failed after replacing files reports; Sync puts it into the task's result.
            changed = {k: res[k] for k in ('changed', 'changed_files') if k in res}
            raise _sync.SyncError(to_text(res.get('msg') or 'the module failed without a message'), changed)
        return res

    def _transfer(self, name, data):
        """Put one file's bytes into the redundant's Ansible temporary directory; its path there."""
        return _delegation.put_bytes(self, '%s.from-primary' % name, data)


def primary_args(args):
    """The module's options on the primary: its own paths and password, nothing to install."""
    out = {'primary': args['primary'], 'password': _sync.primary_password(args)}
    for name in FILE_NAMES:
        path = args['primary_%s_path' % name] or args['%s_path' % name]
        if path:
            out['%s_path' % name] = path
    return out


def redundant_args(user_args):
    """The module's options on the redundant server: what the user gave, without the primary's paths."""
    return {k: v for k, v in user_args.items() if k not in ('primary_%s_path' % n for n in FILE_NAMES)}
