# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller half of ``tapecrypt.ekm.sync``: reach the primary, ask both servers, move changed files.

The task runs against the redundant server. The primary is reached inside the same task with a
second connection built from its inventory variables, the way ``delegate_to`` builds one, and
the module runs there in read-only phases. The decisions are made by ``_sync.Sync``.
"""
from __future__ import annotations

import os

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.basic import FILE_COMMON_ARGUMENTS
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _sync

MODULE = 'tapecrypt.ekm.sync'
OWN_OPTIONS = _sync.ARGUMENT_SPEC
ATTRIBUTE_OPTIONS = _sync.ATTRIBUTE_OPTIONS


class ActionModule(ActionBase):

    TRANSFERS_FILES = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        spec = dict(OWN_OPTIONS)
        spec.update(FILE_COMMON_ARGUMENTS)
        try:
            dummy, args = self.validate_argument_spec(argument_spec=spec)
        except AnsibleError as exc:
            result.update(failed=True, msg=to_text(exc))
            return result
        primary = args['primary']
        if primary == task_vars.get('inventory_hostname'):
            result.update(failed=True, msg='primary is %s, the host this task runs against: run tapecrypt.ekm.sync against '
                                           'the redundant servers, with primary naming the primary.' % primary)
            return result
        hostvars = task_vars.get('hostvars') or {}
        if primary not in hostvars:
            result.update(failed=True, msg='primary %s is not a host in the inventory; name the primary EKM server by its '
                                           'inventory hostname.' % primary)
            return result

        lonely = [n for n in ('keygroups', 'drivetable') if args['primary_%s_path' % n] and not args['%s_path' % n]]
        if lonely:
            result.update(failed=True, msg='primary_%s_path is set but %s_path is not: say where the file goes on this '
                                           'redundant server.' % (lonely[0], lonely[0]))
            return result

        # Options the user gave, passed through to each server's module run (with that server's paths).
        user_args = {k: v for k, v in self._task.args.items() if k in spec}
        redundant_args = dict(user_args)
        for name in ('keystore', 'keygroups', 'drivetable'):
            redundant_args.pop('primary_%s_path' % name, None)
        primary_args = {'primary': primary, 'password': args['primary_password'] if args['primary_password'] is not None
                        else args['password']}
        for name in ('keystore', 'keygroups', 'drivetable'):
            path = args['primary_%s_path' % name] or args['%s_path' % name]
            if path:
                primary_args['%s_path' % name] = path

        handler = None
        try:
            try:
                handler, primary_vars = self._primary_handler(primary, task_vars)
            except AnsibleError as exc:
                result.update(failed=True, msg='Cannot set up the connection to the primary %s from its inventory variables: '
                                               '%s. Nothing was changed.' % (primary, to_text(exc)))
                return result

            def call_primary(phase):
                # Every primary phase runs before anything is installed, so a failure there leaves the redundant as it was.
                try:
                    return self._call(handler, dict(primary_args, _sync=phase), primary_vars, 'the primary %s' % primary)
                except _sync.SyncError as exc:
                    if 'nothing was changed' in str(exc).lower():
                        raise
                    raise _sync.SyncError('%s Nothing was changed on this redundant server.' % exc) from None

            def call_redundant(phase):
                res = self._call(self, dict(redundant_args, _sync=phase), task_vars, 'this redundant server')
                if res.get('ansible_facts'):
                    # Interpreter discovery on the redundant; the primary's is not this host's to keep.
                    result.setdefault('ansible_facts', {}).update(res['ansible_facts'])
                return res

            run = _sync.Sync(call_primary, call_redundant, self._transfer, primary, force=args['force'],
                             check_mode=bool(self._task.check_mode), diff=bool(self._task.diff),
                             with_attributes=any(args.get(k) is not None for k in ATTRIBUTE_OPTIONS))
            try:
                result.update(run.run())
            except _sync.SyncError as exc:
                result.update(exc.result)
                result.update(failed=True, msg=to_text(exc))
        finally:
            if handler is not None:
                self._cleanup_handler(handler)
            tmpdir = self._connection._shell.tmpdir
            if tmpdir:
                self._remove_tmp_path(tmpdir)
        return result

    def _call(self, action, module_args, task_vars, where):
        """Run one phase of the module with ``action``'s connection; failures become SyncError."""
        try:
            res = action._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        except AnsibleError as exc:
            raise _sync.SyncError('Cannot run the sync on %s: %s.' % (where, to_text(exc).rstrip('.')))
        if res.get('failed') or res.get('unreachable'):
            message = to_text(res.get('msg') or 'the module failed without a message')
            if 'MODULE FAILURE' in message or res.get('unreachable'):
                message = 'Cannot run the sync on %s: %s' % (where, message)
                if res.get('module_stderr'):
                    message += ' (%s)' % to_text(res['module_stderr']).strip()[-500:]
            raise _sync.SyncError(message)
        return res

    def _transfer(self, name, data):
        """Put one file's bytes into the redundant's Ansible temporary directory; its path there."""
        if not self._connection._shell.tmpdir:
            self._make_tmp_path()
        tmpdir = self._connection._shell.tmpdir
        remote = self._connection._shell.join_path(tmpdir, '%s.from-primary' % name)
        self._transfer_data(remote, data)
        self._fixup_perms2((tmpdir, remote), execute=False)
        return remote

    def _primary_handler(self, primary, task_vars):
        """An action object whose connection reaches the primary, configured like ``delegate_to: primary``.

        Follows what the task executor does for a delegated host: play context from the host's
        variables, the connection plugin they name, become, then each plugin's options.
        """
        hostvars = task_vars['hostvars']
        # Untemplated, as the task executor hands them to the connection; templated below on use only,
        # so an unrelated variable of the primary that cannot be templated here does no harm.
        cvars = dict(hostvars.raw_get(primary)) if hasattr(hostvars, 'raw_get') else dict(hostvars[primary])
        for magic in ('hostvars', 'groups', 'omit', 'playbook_dir', 'ansible_playbook_python'):
            if magic in task_vars and magic not in cvars:
                cvars[magic] = task_vars[magic]
        cvars['inventory_hostname'] = primary
        templar = self._templar.copy_with_new_env(available_variables=cvars)
        task = self._task.copy(exclude_parent=False, exclude_tasks=True)
        task.delegate_to = None

        play_context = self._play_context.set_task_and_variable_override(task=task, variables=cvars, templar=templar)
        play_context.post_validate(templar=templar)
        if not any(key in cvars for key in C.MAGIC_VARIABLE_MAPPING['remote_addr']):
            # Same as an inventory host without ansible_host: its name is its address.
            play_context.remote_addr = primary
        if cvars.get('ansible_connection') is not None:
            connection_name = templar.template(cvars['ansible_connection'])
        else:
            connection_name = task.connection
        play_context.connection = connection_name
        loaders = self._shared_loader_obj
        connection = loaders.connection_loader.get(connection_name, play_context, new_stdin=None, task_uuid=task._uuid,
                                                   ansible_playbook_pid=to_text(os.getppid()))
        if connection is None:
            raise AnsibleError('the connection plugin %r named for %s was not found' % (connection_name, primary))

        if cvars.get('ansible_become') is not None:
            become = boolean(templar.template(cvars['ansible_become']))
        else:
            become = task.become
        become_plugin = None
        if become:
            method = templar.template(cvars['ansible_become_method']) if cvars.get('ansible_become_method') else task.become_method
            become_plugin = loaders.become_loader.get(method)
            if become_plugin is None:
                raise AnsibleError('the become method %r named for %s was not found' % (method, primary))
        connection.set_become_plugin(become_plugin)
        if become_plugin is not None:
            play_context.set_become_plugin(become_plugin.name)
        play_context.set_attributes_from_plugin(connection)

        task_keys = task.dump_attrs()
        task_keys['timeout'] = play_context.timeout
        if play_context.password:
            task_keys['password'] = play_context.password
        task_keys.pop('retries', None)
        connection.set_options(task_keys=task_keys, var_options=connection._resolve_option_variables(cvars, templar))
        self._set_plugin_options(connection._shell, 'shell', cvars, templar, task_keys)
        if connection.become is not None:
            if play_context.become_pass:
                task_keys['become_pass'] = play_context.become_pass
            self._set_plugin_options(connection.become, 'become', cvars, templar, task_keys)

        handler = loaders.action_loader.get('ansible.legacy.normal', task=task, connection=connection,
                                            play_context=play_context, loader=self._loader, templar=templar,
                                            shared_loader_obj=loaders)
        return handler, cvars

    @staticmethod
    def _set_plugin_options(plugin, plugin_type, cvars, templar, task_keys):
        options = {}
        for name in C.config.get_plugin_vars(plugin_type, plugin._load_name):
            if name in cvars:
                options[name] = templar.template(cvars[name])
        plugin.set_options(task_keys=task_keys, var_options=options)

    @staticmethod
    def _cleanup_handler(handler):
        try:
            tmpdir = handler._connection._shell.tmpdir
            if tmpdir:
                handler._remove_tmp_path(tmpdir)
        finally:
            handler._connection.close()
