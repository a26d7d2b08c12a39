# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/site.yml on a local "host" with bad input: a clear error, and nothing changes.

The host is this machine with ``ansible_connection: local`` and ``ekm_home`` in a temporary
directory (the unprivileged mode the demo uses), so these tests need no lab and run in seconds.
"""
from __future__ import annotations

import getpass
import grp
import hashlib
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(os.path.abspath(sys.executable))
COLLECTIONS = os.path.join(ROOT, '.build')
PASSWORD = 'bad-input-pass'


def host_vars(tmp_path, archive, **overrides):
    ekm_home = str(tmp_path / 'ekm')
    (tmp_path / 'backup').mkdir(exist_ok=True)  # the backup medium, outside the EKM's directories
    values = {
        'ekm_backup_dest': str(tmp_path / 'backup'),
        'ansible_connection': 'local',
        'ansible_python_interpreter': sys.executable,
        'ekm_home': ekm_home,
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
        'ekm_seed': {'site': 'bad', 'keystore_password': PASSWORD,
                     'key_ranges': [{'prefix': 'BAD', 'first': 1, 'count': 4}]},
    }
    values.update(overrides)
    return values


def run_site(tmp_path, hostvars):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(json.dumps({'all': {'children': {'ekm_primary': {'hosts': {'ekm1': hostvars}}}}}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_LOCALHOST_WARNING='0', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory), os.path.join(ROOT, 'playbooks', 'site.yml')],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, cwd=str(tmp_path))
    return proc.returncode, proc.stdout


def snapshot(directory):
    """Every file below ``directory`` with its hash: 'nothing changed' made checkable."""
    found = {}
    for base, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(base, name)
            if os.path.islink(path):
                found[path] = 'link:' + os.readlink(path)
                continue
            with open(path, 'rb') as f:
                found[path] = hashlib.sha256(f.read()).hexdigest()
    return found


def test_a_good_run_then_a_second_changes_nothing(tmp_path, archive):
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive))
    assert rc == 0, out[-3000:]
    sets = list((tmp_path / 'backup' / 'bad' / 'ekm1').glob('*/MANIFEST.json'))
    # One verified set holds the new keys before any configuration names them (phase 3); the configuration that
    # serves them changed the files again, so a second set holds it too (phase 4).
    assert len(sets) == 2, 'a verified set of the staged keys, then one of the configuration that serves them'
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive))
    assert rc == 0 and 'changed=0' in out, out[-3000:]


@pytest.mark.parametrize('overrides,needles', [
    ({'ekm_server_archive_sha256': '0' * 64}, ['The SHA-256 of', 'Nothing was changed']),
    ({'ekm_server_archive': '/nonexistent/ekm.tar.gz'}, ['is not a file on the controller', 'Nothing was changed']),
    ({'ekm_seed': {'site': 'bad', 'keystore_password': PASSWORD,
                   'key_ranges': [{'prefix': 'BA', 'first': 1, 'count': 4}]}},
     ['mistake', "the prefix 'BA' is not 3 letters", 'nothing was changed']),
    ({'ekm_seed': {'site': 'bad', 'keystore_password': PASSWORD,
                   'key_ranges': [{'prefix': 'BAD', 'first': 1, 'count': 4},
                                  {'prefix': 'bad', 'first': 3, 'count': 4}]}},
     ['mistake', 'overlap', 'nothing was changed']),
    ({'ekm_seed': {'site': 'bad', 'keystore_password': 'short', 'key_ranges': [{'prefix': 'BAD', 'first': 1, 'count': 4}]}},
     ['keystore_password has only 5 character(s)', 'at least 6']),
])
def test_bad_input_stops_before_the_host_changes(tmp_path, archive, overrides, needles):
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive, **overrides))
    assert rc != 0
    for needle in needles:
        assert needle.lower() in out.lower(), (needle, out[-3000:])
    assert not (tmp_path / 'ekm').exists()
    assert PASSWORD not in out


def test_malformed_keygroups_source_is_refused(tmp_path, archive):
    bad = tmp_path / 'KeyGroups.xml'
    bad.write_text('<KeyGroups><KeyGroup id="default">\n')
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive, ekm_primary_keygroups_src=str(bad)))
    assert rc != 0 and 'KeyGroups.xml' in out and 'well-formed' in out.lower(), out[-3000:]
    assert not (tmp_path / 'ekm' / 'KeyGroups.xml').exists()


def test_a_properties_file_that_cannot_be_kept_intact_is_left_alone(tmp_path, archive):
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive))
    assert rc == 0, out[-3000:]
    config = tmp_path / 'ekm' / 'KeyManagerConfig.properties'
    config.write_bytes(config.read_bytes() + b'broken.escape=\\u12G4\n')
    before = snapshot(str(tmp_path / 'ekm'))
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive, ekm_seed={
        'site': 'bad', 'keystore_password': PASSWORD, 'key_ranges': [{'prefix': 'BAD', 'first': 1, 'count': 4}],
        'settings': {'Audit.handler.file.size': 4000}}))
    assert rc != 0 and 'line' in out and 'escape' in out.lower(), out[-3000:]
    assert snapshot(str(tmp_path / 'ekm')) == before


def test_many_keys_are_added_in_parts_with_progress_and_a_summary(tmp_path, archive):
    many = {'site': 'bad', 'keystore_password': PASSWORD, 'key_ranges': [{'prefix': 'BAD', 'first': 1, 'count': 1100}]}
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive, ekm_seed=many))
    assert rc == 0, out[-3000:]
    # One loop item per part of at most 500 keys, each naming its keys.
    for label in ('keys BAD001-1F4 (part 1 of 3)', 'keys BAD1F5-3E8 (part 2 of 3)', 'keys BAD3E9-44C (part 3 of 3)'):
        assert label in out, out[-3000:]
    assert 'ekm1: added 1100 keys BAD001-44C to %s in 3 part(s), 1100 entries in all' % (
        tmp_path / 'ekm' / 'keystore' / 'EKMKeys.jck') in out
    # ... and the backup role names the verified set that holds them.
    assert re.search(r'ekm1: backup set %s/\S+ \(new\) holds 1100 keys BAD001-44C\.' % re.escape(str(tmp_path / 'backup')),
                     out), out[-3000:]
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive, ekm_seed=many))
    assert rc == 0 and 'changed=0' in out and 'every key of the seed is in' in out and 'nothing added' in out, out[-3000:]
    more = dict(many, key_ranges=many['key_ranges'] + ['BAE001-004'])  # EKM's range syntax works in the seed too
    rc, out = run_site(tmp_path, host_vars(tmp_path, archive, ekm_seed=more))
    assert rc == 0, out[-3000:]
    assert 'ekm1: added 4 keys BAE001-004' in out and 'in 1 part(s), 1104 entries in all' in out
    # The copy of the keystore as it was before the run: one, made by the first part.
    assert 'the keystore before this run is kept as %s' % (tmp_path / 'ekm' / 'keystore' / 'EKMKeys.jck.') in out
    assert len(list((tmp_path / 'ekm' / 'keystore').glob('EKMKeys.jck.*.bak'))) == 1
