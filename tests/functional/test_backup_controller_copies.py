# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backup role with ekm_backup_where: controller bounds the replaced-file copies on the EKM host too.

ansible-playbook runs the role against one local "EKM host" (its own directory); the set is made on the controller,
and the copies beside the host's files must be bounded by the rule of the host-side backup.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

import ansible_collections.tapecrypt.ekm as collection
from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.keystores import write_keystore

COLLECTIONS_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(collection.__path__[0])))
PLAYBOOK = [sys.executable, '-m', 'ansible.cli.playbook']
PW = 'changeit-controller-copies'


def copy_name(path, n):
    return '%s.20260101T0000%02d000000Z.bak' % (path, n)


def run_role(tmp_path, **extra):
    out = tmp_path / 'result.json'
    play = [{'hosts': 'ekm1', 'gather_facts': False, 'roles': [{'role': 'tapecrypt.ekm.backup'}], 'post_tasks': [
        {'name': 'Keep the results', 'delegate_to': 'localhost', 'changed_when': False, 'ansible.builtin.copy': {
            'dest': str(out), 'content': "{{ {'backup': ekm_backup_result, 'copies': ekm_backup_copies | default(none)}"
                                         " | to_json }}"}}]}]
    (tmp_path / 'play.yml').write_text(yaml.safe_dump(play))
    seed = {'site': 'dc1', 'keystore_password': PW, 'key_ranges': ['DCA001-004']}
    inventory = {'all': {'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable},
                         'hosts': {'localhost': {}, 'ekm1': {
                             'ekm_seed': seed, 'ekm_home': str(tmp_path / 'ekm'), 'ekm_backup_where': 'controller',
                             'ekm_backup_controller_dest': str(tmp_path / 'controller-backup')}}}}
    inventory['all']['hosts']['ekm1'].update(extra)
    (tmp_path / 'inventory.json').write_text(json.dumps(inventory))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local-tmp'), ANSIBLE_REMOTE_TMP=str(tmp_path / 'remote-tmp'))
    env.pop('ANSIBLE_CONFIG', None)
    proc = subprocess.run(PLAYBOOK + ['-i', str(tmp_path / 'inventory.json'), str(tmp_path / 'play.yml')], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, cwd=str(tmp_path),
                          timeout=600)
    assert proc.returncode == 0, proc.stdout
    recap = [line for line in proc.stdout.splitlines() if line.startswith('ekm1 ')]
    return json.loads(out.read_text()), recap[-1], proc.stdout


def test_controller_backups_bound_the_copies_on_the_host(tmp_path):
    home = tmp_path / 'ekm'
    (home / 'keystore').mkdir(parents=True)
    (tmp_path / 'controller-backup').mkdir()
    keystore = home / 'keystore' / 'EKMKeys.jck'
    config = home / 'KeyManagerConfig.properties'
    # The oldest keystore copy holds a key the keystore lacks now (what a restore with allow_key_loss keeps).
    write_keystore(str(keystore), range(1, 6), PW)
    lost = keystore.read_bytes()
    write_keystore(str(keystore), range(1, 5), PW)
    ks_copies = [copy_name(str(keystore), n) for n in range(7)]
    for n, path in enumerate(ks_copies):
        with open(path, 'wb') as f:
            f.write(lost if n == 0 else keystore.read_bytes())
    config.write_bytes(b'TransportListener.tcp.port=3801\n')
    conf_copies = [copy_name(str(config), n) for n in range(7)]
    for path in conf_copies:
        with open(path, 'wb') as f:
            f.write(b'TransportListener.tcp.port=3800\n')

    first, recap, log = run_role(tmp_path, ekm_backup_keep_copies=3)
    assert first['backup']['created'] is True, log
    copies = first['copies']
    # Configuration copies by age; keystore copies whose entries the keystore and the set hold; never the lost one.
    assert sorted(copies['removed_copies']) == sorted(conf_copies[:4] + ks_copies[1:4]), log
    assert copies['kept_copies'] == [ks_copies[0]]
    assert first['backup']['removed_copies'] == copies['removed_copies']
    assert os.path.exists(ks_copies[0]) and all(not os.path.exists(c) for c in copies['removed_copies'])
    assert _jceks.load(open(ks_copies[0], 'rb').read(), PW).aliases()[-1] == 'dca000000000000000005'
    # No copy of the set is left beside the keystore.
    left = [os.path.basename(p) for p in [str(keystore)] + ks_copies if os.path.exists(p)]
    assert sorted(os.listdir(home / 'keystore')) == sorted(left)

    again, recap, log = run_role(tmp_path, ekm_backup_keep_copies=3)
    assert 'changed=0' in recap, log
    assert again['copies']['removed_copies'] == [] and again['copies']['kept_copies'] == [ks_copies[0]]


def test_the_default_keeps_five(tmp_path):
    home = tmp_path / 'ekm'
    (home / 'keystore').mkdir(parents=True)
    (tmp_path / 'controller-backup').mkdir()
    keystore = home / 'keystore' / 'EKMKeys.jck'
    write_keystore(str(keystore), range(1, 3), PW)
    ks_copies = [copy_name(str(keystore), n) for n in range(7)]
    for path in ks_copies:
        with open(path, 'wb') as f:
            f.write(keystore.read_bytes())
    default, dummy, log = run_role(tmp_path)
    assert sorted(default['copies']['removed_copies']) == sorted(ks_copies[:2]), log
