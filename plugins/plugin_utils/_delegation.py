# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every use of ansible-core's private APIs by the ``sync`` action plugin, in one place.

The sync runs against the redundant server and reaches the primary inside the same task, with a
second connection built from the primary's inventory variables the way ``delegate_to`` builds
one. ansible-core offers no public API for that, nor for running a module or moving bytes from
an action plugin, so this module uses the underscore methods that ansible-core's own action
plugins use. They were checked against the sources of ansible-core 2.17 to 2.21, and
``tests/unit/plugins/plugin_utils/test_delegation.py`` exercises each function through a real
``ansible-playbook`` run, so a change in a new ansible-core shows up there first.
"""
from __future__ import annotations

import os

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean

# Variables of the task's host that every host's variables may refer to.
_MAGIC_VARIABLES = ('hostvars', 'groups', 'omit', 'playbook_dir', 'ansible_playbook_python')


def host_variables(task_vars, host):
    """``host``'s variables as the task executor hands them to a connection: untemplated, plus the magic ones."""
    hostvars = task_vars['hostvars']
    # Untemplated; templated below on use only, so an unrelated variable of that host that cannot be templated
    # here does no harm.
    cvars = dict(hostvars.raw_get(host)) if hasattr(hostvars, 'raw_get') else dict(hostvars[host])
    for magic in _MAGIC_VARIABLES:
        if magic in task_vars and magic not in cvars:
            cvars[magic] = task_vars[magic]
    cvars['inventory_hostname'] = host
    return cvars


def action_for_host(action, host, task_vars):
    """``(handler, host variables)``: an action object whose connection reaches ``host``, as ``delegate_to: host`` would.

    Follows what the task executor does for a delegated host: play context from the host's
    variables, the connection plugin they name, become, then each plugin's options. The
    caller closes it with ``close``.
    """
    cvars = host_variables(task_vars, host)
    templar = action._templar.copy_with_new_env(available_variables=cvars)
    task = action._task.copy(exclude_parent=False, exclude_tasks=True)
    task.delegate_to = None
    play_context = action._play_context.set_task_and_variable_override(task=task, variables=cvars, templar=templar)
    play_context.post_validate(templar=templar)
    if not any(key in cvars for key in C.MAGIC_VARIABLE_MAPPING['remote_addr']):
        # Same as an inventory host without ansible_host: its name is its address.
        play_context.remote_addr = host
    connection = _connect(action, host, task, play_context, cvars, templar)
    handler = action._shared_loader_obj.action_loader.get(
        'ansible.legacy.normal', task=task, connection=connection, play_context=play_context, loader=action._loader,
        templar=templar, shared_loader_obj=action._shared_loader_obj)
    return handler, cvars


def _connect(action, host, task, play_context, cvars, templar):
    loaders = action._shared_loader_obj
    name = templar.template(cvars['ansible_connection']) if cvars.get('ansible_connection') is not None else task.connection
    play_context.connection = name
    connection = loaders.connection_loader.get(name, play_context, new_stdin=None, task_uuid=task._uuid,
                                               ansible_playbook_pid=to_text(os.getppid()))
    if connection is None:
        raise AnsibleError('the connection plugin %r named for %s was not found' % (name, host))
    become_plugin = _become_plugin(loaders, host, task, cvars, templar)
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
    _set_plugin_options(connection._shell, 'shell', cvars, templar, task_keys)
    if connection.become is not None:
        if play_context.become_pass:
            task_keys['become_pass'] = play_context.become_pass
        _set_plugin_options(connection.become, 'become', cvars, templar, task_keys)
    return connection


def _become_plugin(loaders, host, task, cvars, templar):
    become = boolean(templar.template(cvars['ansible_become'])) if cvars.get('ansible_become') is not None else task.become
    if not become:
        return None
    method = templar.template(cvars['ansible_become_method']) if cvars.get('ansible_become_method') else task.become_method
    plugin = loaders.become_loader.get(method)
    if plugin is None:
        raise AnsibleError('the become method %r named for %s was not found' % (method, host))
    return plugin


def _set_plugin_options(plugin, plugin_type, cvars, templar, task_keys):
    options = {}
    for name in C.config.get_plugin_vars(plugin_type, plugin._load_name):
        if name in cvars:
            options[name] = templar.template(cvars[name])
    plugin.set_options(task_keys=task_keys, var_options=options)


def run_module(action, module_name, module_args, task_vars, internal=None):
    """Run a module through ``action``'s connection; its result (AnsibleError when it cannot be run at all).

    ``internal``: keys sent beside the module's options that its argument spec does not know (the
    module reads them with ``basic._load_params()``); the module is then told to ignore unknown
    keys, as ansible-core's own ``gather_facts`` and ``package`` actions do. The caller has checked
    the options.
    """
    if not internal:
        return action._execute_module(module_name=module_name, module_args=module_args, task_vars=task_vars)
    return action._execute_module(module_name=module_name, module_args=dict(module_args, **internal),
                                  task_vars=task_vars, ignore_unknown_opts=True)


def module_crashed(result):
    """Whether ``result`` is not the module's own result but ansible-core's report that none could be read (the
    module crashed, or its interpreter is missing): only then does it carry the raw ``module_stdout``."""
    return 'module_stdout' in result or 'module_stderr' in result


def put_bytes(action, name, data):
    """Put ``data`` into the Ansible temporary directory of ``action``'s host (made if needed); its path there."""
    shell = action._connection._shell
    if not shell.tmpdir:
        action._make_tmp_path()
    remote = shell.join_path(shell.tmpdir, name)
    action._transfer_data(remote, data)
    action._fixup_perms2((shell.tmpdir, remote), execute=False)
    return remote


def remove_tmp(action):
    """Remove the Ansible temporary directory of ``action``'s host, if there is one."""
    tmpdir = action._connection._shell.tmpdir
    if tmpdir:
        action._remove_tmp_path(tmpdir)


def close(handler):
    """Remove the temporary directory of a handler from ``action_for_host`` and close its connection."""
    try:
        remove_tmp(handler)
    finally:
        handler._connection.close()
