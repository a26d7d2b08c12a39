# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.filter.preflight import FilterModule, preflight_problems


def checked(machine='boot:1', home='1:10', users=None, dirs=None):
    return {'result': {'machine': machine, 'paths': {'home': {'identity': home, 'real_path': '/opt/ekm'},
                                                     'keystore': {'identity': home + '/keystore/EKMKeys.jck',
                                                                  'real_path': '/opt/ekm/keystore/EKMKeys.jck'}},
                       'directories': dirs or [], 'users': users or {'ekm': True}, 'groups': {'ekm': True}}}


def test_a_sound_site_has_no_problem():
    hosts = {'ekm1': checked(), 'ekm2': checked(machine='boot:2')}  # same paths, other machine
    assert preflight_problems(hosts, ['ekm1'], ['ekm2']) == []
    assert FilterModule().filters()['preflight_problems'] is preflight_problems


def test_groups():
    assert preflight_problems({}, ['a', 'b'], [], inventory_only=True) == [
        'The inventory group ekm_primary must hold exactly one host, since keys are generated on one primary only; '
        'it holds 2: a, b.']
    assert 'it holds none' in preflight_problems({}, [], ['b'], inventory_only=True)[0]
    assert preflight_problems({'a': checked(), 'b': checked(machine='boot:2')}, ['a'], ['a', 'b']) == [
        'a is in both ekm_primary and ekm_redundant; a server is either the primary or a redundant server.']


def test_shared_files_on_one_machine_are_named_once_per_pair():
    problems = preflight_problems({'ekm1': checked(), 'ekm2': checked()}, ['ekm1'], ['ekm2'])
    assert len(problems) == 1
    assert problems[0].startswith('ekm1 and ekm2 would share their EKM files')
    assert 'ekm_home of ekm1 and ekm_home of ekm2 are /opt/ekm' in problems[0]
    assert 'ekm_keystore_path of ekm1 and ekm_keystore_path of ekm2 are /opt/ekm/keystore/EKMKeys.jck' in problems[0]
    # The same device and inode on two machines are two files.
    assert preflight_problems({'ekm1': checked(), 'ekm2': checked(machine='boot:2')}, ['ekm1'], ['ekm2']) == []


def test_unreachable_and_unchecked_servers():
    hosts = {'ekm1': {'result': {'unreachable': True, 'msg': 'Failed to connect.'}},
             'ekm2': {'result': {'failed': True, 'msg': 'No Python'}},
             'ekm3': {'result': {'unreachable': True, 'msg': 'gone'}}}
    problems = preflight_problems(hosts, ['ekm1'], ['ekm2', 'ekm3'], ['ekm3'])
    assert problems == ['ekm1 (the primary) cannot be reached: Failed to connect.',
                        'ekm2 (a redundant server) could not be checked: No Python']
    problems = preflight_problems(hosts, ['ekm1'], ['ekm2', 'ekm3'])
    assert problems[-1].startswith('ekm3 (a redundant server) cannot be reached: gone. Bring it back, or name it in '
                                   'ekm_out_of_service')
    # verify.yml reports reachability itself.
    assert preflight_problems(hosts, ['ekm1'], ['ekm2', 'ekm3'], inventory_only=True) == []


def test_servers_outside_the_play_are_not_checked():
    # ansible-playbook --limit ekm1: ekm2 is not part of the run.
    assert preflight_problems({'ekm1': checked()}, ['ekm1'], ['ekm2']) == []


def test_out_of_service_is_a_list_of_redundant_servers():
    hosts = {'ekm1': checked(), 'ekm2': checked(machine='boot:2')}
    assert preflight_problems(hosts, ['ekm1'], ['ekm2'], 'ekm2') == [
        "ekm_out_of_service must be a list of inventory hostnames of redundant servers, such as [ekm2], not 'ekm2'."]
    assert preflight_problems(hosts, ['ekm1'], ['ekm2'], ['ekm1'])[0].startswith(
        'ekm_out_of_service names ekm1, the primary')
    assert preflight_problems(hosts, ['ekm1'], ['ekm2'], ['ekm9'])[0].startswith(
        'ekm_out_of_service names ekm9, which is not a redundant server')


def test_backup_destination_and_accounts():
    host = checked(users={'ekm': False}, dirs=[{'path': '/srv/b', 'writable': False, 'problem': '/srv/b does not exist'}])
    host['controller'] = {'directories': [{'path': '/c', 'writable': False, 'problem': '/c cannot be written to (x)'}]}
    assert preflight_problems({'ekm1': host}, ['ekm1'], []) == [
        'ekm1: the backup destination /srv/b (ekm_backup_dest) is not usable: /srv/b does not exist.',
        'ekm1: the backup destination /c on the controller (ekm_backup_controller_dest) is not usable: /c cannot be '
        'written to (x).',
        "ekm1: the account 'ekm' (ekm_user) does not exist there; create it first, or let site.yml's server role "
        'create it (ekm_server_manage_user: true).']


def test_bad_input():
    with pytest.raises(AnsibleFilterError, match='expects a mapping'):
        preflight_problems(['ekm1'], ['ekm1'], [])
