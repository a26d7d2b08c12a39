# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action plugin end to end: ansible-playbook with a throwaway inventory of two local "servers".

Both inventory hosts use ``ansible_connection: local`` and their own directories, so this runs the
real path: a second connection built from the primary's host variables, module phases on each
side, the file transfer through the controller and the redundant's temporary directory.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap

import pytest

import ansible_collections.tapecrypt.ekm as collection
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import write_keystore

PW = 'changeit-store'
COLLECTIONS_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(collection.__path__[0]))))
# The ansible-playbook of the interpreter running the tests, wherever its scripts are installed.
PLAYBOOK = [sys.executable, '-m', 'ansible.cli.playbook']


def make_keystore(path, numbers, existing=None):
    write_keystore(path, numbers, PW, existing=existing)


TASK = textwrap.dedent('''
    - name: Sync %(n)d
      tapecrypt.ekm.sync: %(args)s
      check_mode: %(check)s
      register: result
      ignore_errors: true
    - name: Keep result %(n)d
      ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ out }}/result-%(n)d.json"
      delegate_to: localhost
      check_mode: false
''')


class Lab:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.p = tmp_path / 'primary'
        self.r = tmp_path / 'redundant'
        self.remote_tmp = tmp_path / 'remote-tmp'
        self.out = tmp_path / 'results'
        for d in (self.p, self.r, self.remote_tmp, self.out):
            d.mkdir()
        inventory = {'all': {'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable},
                             'hosts': {'primary': {'ekm_dir': str(self.p)}, 'redundant': {'ekm_dir': str(self.r)},
                                       'localhost': {}}}}
        (tmp_path / 'inventory.json').write_text(json.dumps(inventory))

    def play(self, *tasks, diff=False, verbosity=0):
        """Run one play of sync tasks against the redundant; each task is ``(extra_args, check_mode)``.

        Returns the registered results, in order, and the playbook's output.
        """
        for old in self.out.iterdir():
            old.unlink()
        text = ['- hosts: redundant', '  gather_facts: false', '  tasks:']
        for n, (extra, check) in enumerate(tasks):
            task_args = {'primary': 'primary', 'keystore_path': '{{ ekm_dir }}/EKMKeys.jck',
                         'keygroups_path': '{{ ekm_dir }}/KeyGroups.xml',
                         'primary_keystore_path': "{{ hostvars['primary'].ekm_dir }}/EKMKeys.jck",
                         'primary_keygroups_path': "{{ hostvars['primary'].ekm_dir }}/KeyGroups.xml", 'password': PW}
            task_args.update(extra)
            text.append(textwrap.indent(TASK % {'n': n, 'args': json.dumps(task_args), 'check': str(check).lower()}, '    '))
        book = self.tmp / 'play.yml'
        book.write_text('\n'.join(text))
        cmd = PLAYBOOK + ['-i', str(self.tmp / 'inventory.json'), str(book), '-e', json.dumps({'out': str(self.out)})]
        if diff:
            cmd.append('--diff')
        if verbosity:
            cmd.append('-' + 'v' * verbosity)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_REMOTE_TMP=str(self.remote_tmp),
                   ANSIBLE_LOCAL_TEMP=str(self.tmp / 'local-tmp'), ANSIBLE_NOCOLOR='1', ANSIBLE_HOST_KEY_CHECKING='0',
                   ANSIBLE_RETRY_FILES_ENABLED='0')
        env.pop('ANSIBLE_CONFIG', None)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                              cwd=str(self.tmp), timeout=600)
        results = []
        for n in range(len(tasks)):
            path = self.out / ('result-%d.json' % n)
            assert path.exists(), proc.stdout
            results.append(json.loads(path.read_text()))
        return results, proc.stdout


@pytest.fixture
def lab(tmp_path):
    return Lab(tmp_path)


def test_sync_through_ansible_playbook(lab):
    make_keystore(str(lab.p / 'EKMKeys.jck'), range(1, 6))
    (lab.p / 'KeyGroups.xml').write_bytes(b'<KeyGroups/>\n')

    (check, apply, again), log = lab.play(({}, True), ({}, False), ({}, False), diff=True, verbosity=4)
    assert check['changed'] is True and check['in_sync'] is False, log
    assert check['drift']['keystore']['status'] == 'missing'
    assert apply['changed'] is True and apply['in_sync'] is True, log
    assert apply['aliases_added'] == ['DCA001-005']
    assert apply['primary_digest'] == apply['redundant_digest']
    assert again['changed'] is False and again['in_sync'] is True
    for name in ('EKMKeys.jck', 'KeyGroups.xml'):
        assert (lab.r / name).read_bytes() == (lab.p / name).read_bytes()
    # The keystore crossed the controller, but never through results or the (very verbose) log.
    encoded = base64.b64encode((lab.p / 'EKMKeys.jck').read_bytes()).decode()
    assert encoded[100:160] not in log and PW not in log
    assert os.listdir(lab.remote_tmp) == []

    make_keystore(str(lab.p / 'EKMKeys.jck'), [6, 7], existing=str(lab.p / 'EKMKeys.jck'))
    (added,), log = lab.play(({}, False))
    assert added['changed'] is True and added['aliases_added'] == ['DCA006-007'], log
    assert added['changed_files'] == [str(lab.r / 'EKMKeys.jck')]
    assert len(added['backup_files']) == 1


def test_conflict_and_bad_arguments_fail_clearly(lab):
    make_keystore(str(lab.p / 'EKMKeys.jck'), range(1, 4))
    make_keystore(str(lab.r / 'EKMKeys.jck'), range(1, 4))  # its own keys under the same aliases
    before = (lab.r / 'EKMKeys.jck').read_bytes()
    (conflict, unknown, itself, internal, lonely), log = lab.play(
        ({}, False), ({'primary': 'no-such-host'}, False), ({'primary': 'redundant'}, False),
        ({'_sync': {'phase': 'install'}}, False), ({'drivetable_path': None, 'primary_drivetable_path': '/x'}, False))
    assert conflict['failed'] is True, log
    assert 'different keys' in conflict['msg'] and 'DCA001-003' in conflict['msg']
    assert conflict['conflicts'][0]['aliases'] == ['DCA001-003']
    assert unknown['failed'] is True and 'not a host in the inventory' in unknown['msg']
    assert itself['failed'] is True and 'the host this task runs against' in itself['msg']
    assert internal['failed'] is True and '_sync is not an option' in internal['msg'], internal
    assert 'Nothing was changed' in internal['msg']
    assert lonely['failed'] is True and "required by 'primary_drivetable_path': drivetable_path" in lonely['msg']
    assert (lab.r / 'EKMKeys.jck').read_bytes() == before
    assert sorted(os.listdir(lab.r)) == ['EKMKeys.jck']


def test_unreachable_primary_changes_nothing(lab):
    inventory = json.loads((lab.tmp / 'inventory.json').read_text())
    inventory['all']['hosts']['primary'].update(ansible_connection='ssh', ansible_host='127.0.0.1', ansible_port=1,
                                                ansible_ssh_common_args='-o ConnectTimeout=3')
    (lab.tmp / 'inventory.json').write_text(json.dumps(inventory))
    make_keystore(str(lab.r / 'EKMKeys.jck'), [1])
    before = (lab.r / 'EKMKeys.jck').read_bytes()
    (res,), log = lab.play(({}, False))
    assert res['failed'] is True and 'Cannot run the sync on the primary primary' in res['msg'], log
    assert (lab.r / 'EKMKeys.jck').read_bytes() == before
    assert sorted(os.listdir(lab.r)) == ['EKMKeys.jck']
