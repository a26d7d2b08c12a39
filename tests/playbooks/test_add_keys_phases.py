# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/add_keys.yml with the primary's backup medium missing: the new keys stay staged, served nowhere.

Two local "hosts" (``ansible_connection: local``, each with its own ``ekm_home`` in a temporary directory), a
primary and a redundant server, without starting EKM, so that the test needs no lab. site.yml first, then
add_keys.yml with the primary's backup destination gone: the keys are generated and copied, but no verified set
holds them, so neither configuration names them, verify.yml fails naming the playbook that finishes the job, and a
rerun with the medium back serves them on both servers, after which a third run changes nothing.
"""
from __future__ import annotations

import getpass
import grp
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(os.path.abspath(sys.executable))
COLLECTIONS = os.path.join(ROOT, '.build')
PASSWORD = 'phases-pass-42'


def write_inventory(tmp_path, archive, ranges=({'prefix': 'PHA', 'first': 1, 'count': 4},)):
    common = {
        'ansible_connection': 'local',
        'ansible_python_interpreter': sys.executable,
        'ekm_user': getpass.getuser(),
        'ekm_group': grp.getgrgid(os.getgid()).gr_name,
        'ekm_server_manage_user': False,
        'ekm_server_manage_packages': False,
        'ekm_service_manager': 'script',
        'ekm_server_archive': archive[0],
        'ekm_server_archive_sha256': archive[1],
        'ekm_server_main_class': 'tapecrypt.standin.EkmStandin',
        'ekm_primary_keystore_iteration_count': 1000,
        'ekm_primary_start': False,
        'ekm_redundant_start': False,
        'ekm_seed': {'site': 'phases', 'keystore_password': PASSWORD,
                     'key_ranges': list(ranges)},
    }
    hosts = {}
    for host in ('ekm1', 'ekm2'):
        (tmp_path / ('backup-' + host)).mkdir(exist_ok=True)
        hosts[host] = {'ekm_home': str(tmp_path / host), 'ekm_backup_dest': str(tmp_path / ('backup-' + host))}
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {'vars': common, 'children': {
        'ekm_primary': {'hosts': {'ekm1': hosts['ekm1']}},
        'ekm_redundant': {'hosts': {'ekm2': hosts['ekm2']}}}}}))
    return inventory


def run(tmp_path, inventory, name, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_LOCALHOST_WARNING='0', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory),
                           os.path.join(ROOT, 'playbooks', name)] + list(extra),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                          cwd=str(tmp_path))
    return proc.returncode, proc.stdout


def key_set(tmp_path, host):
    text = (tmp_path / host / 'KeyManagerConfig.properties').read_text(encoding='utf-8')
    return re.search(r'^symmetricKeySet\s*=\s*(.*)$', text, re.M).group(1).strip()


def aliases(tmp_path, host):
    sys.path.insert(0, os.path.join(ROOT, '.build'))
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _keystore  # pylint: disable=import-outside-toplevel
    keystore, _data = _keystore.read(str(tmp_path / host / 'keystore' / 'EKMKeys.jck'), PASSWORD)
    return sorted(e.alias for e in keystore.entries)


def test_add_keys_without_the_backup_medium_stages_the_keys_and_a_rerun_serves_them(tmp_path, archive):
    inventory = write_inventory(tmp_path, archive)
    rc, out = run(tmp_path, inventory, 'site.yml')
    assert rc == 0, out[-4000:]
    assert key_set(tmp_path, 'ekm1') == key_set(tmp_path, 'ekm2') == 'PHA001-004'

    # The primary's backup medium is not mounted: the preflight stops the run before any key is made.
    (tmp_path / 'backup-ekm1').rename(tmp_path / 'backup-ekm1.unmounted')
    new = json.dumps({'ekm_add_key_ranges': [{'prefix': 'PHA', 'first': 5, 'count': 4}]})
    rc, out = run(tmp_path, inventory, 'add_keys.yml', '-e', new)
    assert rc != 0, out[-4000:]
    assert 'backup-ekm1' in out and 'Nothing was changed' in out, out[-4000:]
    assert 'PLAY [Phase 1 of 4' not in out
    assert len(aliases(tmp_path, 'ekm1')) == len(aliases(tmp_path, 'ekm2')) == 4
    (tmp_path / 'backup-ekm1.unmounted').rename(tmp_path / 'backup-ekm1')

    # The new range goes into the seed, as the playbook's comment says. With the backup phase switched off the new
    # keys are generated and copied (phases 1 and 2) but are in no verified set, so they are served nowhere: both
    # configurations keep PHA001-004.
    inventory = write_inventory(tmp_path, archive, ({'prefix': 'PHA', 'first': 1, 'count': 4},
                                                    {'prefix': 'PHA', 'first': 5, 'count': 4}))
    rc, out = run(tmp_path, inventory, 'add_keys.yml', '-e', 'ekm_add_keys_backup=false')
    assert 'PLAY [Phase 4 of 4: serve the keys that are safe' in out, out[-4000:]
    assert len(aliases(tmp_path, 'ekm1')) == len(aliases(tmp_path, 'ekm2')) == 8
    assert aliases(tmp_path, 'ekm1') == aliases(tmp_path, 'ekm2')
    assert key_set(tmp_path, 'ekm1') == key_set(tmp_path, 'ekm2') == 'PHA001-004'
    assert "not in the primary's newest verified backup set" in out, out[-4000:]

    # EKM is never started here (ekm_primary_start and ekm_redundant_start are false): no service to check.
    rc, out = run(tmp_path, inventory, 'verify.yml', '-e', 'ekm_verify_backups=false', '-e', 'ekm_verify_service=false')
    assert rc != 0 and 'KEYS STAGED' in out and 'Run tapecrypt.ekm.add_keys to finish the job' in out, out[-4000:]

    rc, out = run(tmp_path, inventory, 'add_keys.yml', '-e', new)
    assert rc == 0, out[-4000:]
    assert key_set(tmp_path, 'ekm1') == key_set(tmp_path, 'ekm2') == 'PHA001-004,PHA005-008'  # the seed's two ranges
    rc, out = run(tmp_path, inventory, 'verify.yml', '-e', 'ekm_verify_service=false')
    assert rc == 0, out[-4000:]
    rc, out = run(tmp_path, inventory, 'add_keys.yml', '-e', new)
    assert rc == 0 and re.search(r'ekm1\s+: ok=\d+\s+changed=0', out) and re.search(r'ekm2\s+: ok=\d+\s+changed=0', out), \
        out[-4000:]
