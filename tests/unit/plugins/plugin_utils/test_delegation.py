# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``plugin_utils/_delegation``, the sync action's only use of ansible-core's private APIs.

A small probe action plugin calls each function from inside a real ``ansible-playbook`` run, on
whatever ansible-core the tests run with, so a change of those private APIs in a new release
fails here, by name, rather than somewhere in a sync.
"""
from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

import ansible_collections.tapecrypt.ekm as collection

COLLECTIONS_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(collection.__path__[0]))))
PAYLOAD = b'bytes \x00\xff through the controller'

PROBE = textwrap.dedent('''
    from ansible.errors import AnsibleError
    from ansible.plugins.action import ActionBase
    from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _delegation


    class ActionModule(ActionBase):
        def run(self, tmp=None, task_vars=None):
            result = super().run(tmp, task_vars)
            try:
                handler, host_vars = _delegation.action_for_host(self, self._task.args['other'], task_vars)
            except AnsibleError as exc:
                return dict(result, failed=True, msg=str(exc))
            try:
                result['other'] = _delegation.run_module(handler, 'ansible.legacy.ping', {'data': 'from the other host'},
                                                         host_vars)
                result['crashed'] = _delegation.module_crashed(result['other'])
                if result['crashed']:
                    return result
                result['other_tmp'] = handler._connection._shell.tmpdir
                result['remote'] = _delegation.put_bytes(self, 'probe.bin', %r)
                result['slurped'] = _delegation.run_module(self, 'ansible.legacy.slurp', {'src': result['remote']},
                                                           task_vars)['content']
            finally:
                _delegation.close(handler)
                _delegation.remove_tmp(self)
            return result
''' % PAYLOAD)


def run_probe(tmp_path, other_vars):
    """Run the probe against host ``here`` with the other host ``there`` (variables ``other_vars``); its result."""
    (tmp_path / 'action').mkdir()
    (tmp_path / 'action' / 'delegation_probe.py').write_text(PROBE)
    inventory = {'all': {'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable},
                         'hosts': {'here': {'ansible_remote_tmp': str(tmp_path / 'here-tmp')},
                                   'there': dict({'ansible_remote_tmp': str(tmp_path / 'there-tmp')}, **other_vars)}}}
    (tmp_path / 'inventory.json').write_text(json.dumps(inventory))
    (tmp_path / 'play.yml').write_text(textwrap.dedent('''
        - hosts: here
          gather_facts: false
          tasks:
            - name: Probe
              delegation_probe:
                other: there
              register: probe
              ignore_errors: true
            - name: Keep the result
              ansible.builtin.copy:
                content: "{{ probe | to_json }}"
                dest: "%s"
    ''' % (tmp_path / 'result.json')))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_ACTION_PLUGINS=str(tmp_path / 'action'),
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local-tmp'), ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               HOME=str(tmp_path))
    env.pop('ANSIBLE_CONFIG', None)
    proc = subprocess.run([sys.executable, '-m', 'ansible.cli.playbook', '-i', str(tmp_path / 'inventory.json'),
                           str(tmp_path / 'play.yml')], env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False, timeout=300)
    assert (tmp_path / 'result.json').exists(), proc.stdout
    return json.loads((tmp_path / 'result.json').read_text()), proc.stdout


def test_each_function_works_on_this_ansible_core(tmp_path):
    # The other host's interpreter is a wrapper that leaves a mark: the module ran with that host's variables.
    marker = tmp_path / 'ran-on-there'
    wrapper = tmp_path / 'python-there'
    wrapper.write_text('#!/bin/sh\necho "$@" >> %s\nexec %s "$@"\n' % (marker, sys.executable))
    os.chmod(str(wrapper), stat.S_IRWXU)
    res, log = run_probe(tmp_path, {'ansible_python_interpreter': str(wrapper)})
    assert not res.get('failed'), log
    assert res['other']['ping'] == 'from the other host' and res['crashed'] is False
    assert marker.exists() and 'AnsiballZ_ping' in marker.read_text()
    # Each host used its own temporary directory, and both were removed.
    assert res['other_tmp'].startswith(str(tmp_path / 'there-tmp'))
    assert res['remote'].startswith(str(tmp_path / 'here-tmp'))
    assert base64.b64decode(res['slurped']) == PAYLOAD
    assert os.listdir(str(tmp_path / 'here-tmp')) == []
    assert os.listdir(str(tmp_path / 'there-tmp')) == []


@pytest.mark.parametrize('other_vars,message', [
    ({'ansible_connection': 'no_such_connection'}, "the connection plugin 'no_such_connection' named for there was not found"),
    ({'ansible_become': True, 'ansible_become_method': 'no_such_become'},
     "the become method 'no_such_become' named for there was not found"),
])
def test_unknown_plugins_of_the_other_host_are_named(tmp_path, other_vars, message):
    res, log = run_probe(tmp_path, other_vars)
    assert res['failed'] is True, log
    assert message in res['msg']


def test_a_module_that_cannot_run_is_told_from_a_module_failure(tmp_path):
    res, log = run_probe(tmp_path, {'ansible_python_interpreter': str(tmp_path / 'no-such-python')})
    assert res['crashed'] is True, log
    assert res['other']['failed'] is True
