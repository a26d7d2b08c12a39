# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The first play of playbooks/add_keys.yml (it extends the seed with ekm_add_key_ranges), run by ansible-playbook.

The play is taken from the playbook file as it is and followed by a play that records the seed each host then
holds and what validate_seed says of it; no EKM server is needed, since nothing after the first play runs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

import ansible_collections.tapecrypt.ekm as collection

COLLECTION = os.path.abspath(collection.__path__[0])
COLLECTIONS_ROOT = os.path.dirname(os.path.dirname(COLLECTION))
PLAYBOOK = [sys.executable, '-m', 'ansible.cli.playbook']
FIRST_PLAY = 'Add the new key ranges to the seed for this run'
SEED = {'site': 'dc1', 'keystore_password': 'changeit-store', 'key_ranges': [{'prefix': 'DCA', 'first': 1, 'count': 512}]}

RECORD = {
    'name': 'Record the seed', 'hosts': 'ekm_primary:ekm_redundant', 'gather_facts': False,
    'tasks': [{'name': 'Write it', 'delegate_to': 'localhost', 'ansible.builtin.copy': {
        'dest': '{{ out }}/{{ inventory_hostname }}.json',
        'content': "{{ {'key_ranges': ekm_seed.key_ranges, 'errors': ekm_seed | tapecrypt.ekm.validate_seed, "
                   "'symmetric_key_set': ekm_seed | tapecrypt.ekm.symmetric_key_set} | to_json }}"}}],
}


def first_play():
    with open(os.path.join(COLLECTION, 'playbooks', 'add_keys.yml'), encoding='utf-8') as f:
        plays = yaml.safe_load(f)
    matching = [p for p in plays if p.get('name') == FIRST_PLAY]
    assert len(matching) == 1, 'add_keys.yml has no play named %r' % FIRST_PLAY
    return matching[0]


@pytest.fixture
def run(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    inventory = {'all': {'vars': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                                  'ekm_seed': SEED},
                         'hosts': {'localhost': {}},
                         'children': {'ekm_primary': {'hosts': {'ekm1': {}}}, 'ekm_redundant': {'hosts': {'ekm2': {}}}}}}
    (tmp_path / 'inventory.json').write_text(json.dumps(inventory))
    (tmp_path / 'play.yml').write_text(yaml.safe_dump([first_play(), RECORD], sort_keys=False))

    def play(ranges):
        for old in out.iterdir():
            old.unlink()
        cmd = PLAYBOOK + ['-i', str(tmp_path / 'inventory.json'), str(tmp_path / 'play.yml'),
                          '-e', json.dumps({'out': str(out), 'ekm_add_key_ranges': ranges})]
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR='1',
                   ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local-tmp'),
                   ANSIBLE_REMOTE_TMP=str(tmp_path / 'remote-tmp'))
        env.pop('ANSIBLE_CONFIG', None)
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                              cwd=str(tmp_path), timeout=300)
        seeds = {p.stem: json.loads(p.read_text()) for p in out.iterdir()}
        return proc.returncode, seeds, proc.stdout
    return play


def test_ranges_in_ekm_syntax_and_as_mappings_extend_the_seed(run):
    rc, seeds, log = run(['DCA201-2FF', {'prefix': 'DCB', 'first': 1, 'count': 16}])
    assert rc == 0, log
    assert sorted(seeds) == ['ekm1', 'ekm2'], log
    for seed in seeds.values():
        assert seed['key_ranges'] == SEED['key_ranges'] + ['DCA201-2FF', {'prefix': 'DCB', 'first': 1, 'count': 16}]
        assert seed['errors'] == []
        assert seed['symmetric_key_set'] == 'DCA001-200,DCA201-2FF,DCB001-010'


def test_a_range_the_seed_holds_already_adds_nothing_however_written(run):
    rc, seeds, log = run(['DCA001-200', {'prefix': 'DCA', 'first': 1, 'last': 512}])
    assert rc == 0, log
    for seed in seeds.values():
        assert seed['errors'] == [] and seed['symmetric_key_set'] == 'DCA001-200'


@pytest.mark.parametrize('ranges', [[42], ['DCA201-2FF', ['DCA300-3FF']], 'DCA201-2FF', {'prefix': 'DCA'}])
def test_anything_else_fails_clearly_before_anything_changes(run, ranges):
    rc, seeds, log = run(ranges)
    assert rc != 0
    assert seeds == {}, log  # the run stopped in the first play
    assert "ekm_add_key_ranges must be a list of ranges" in log and 'Nothing was changed.' in log
    assert "EKM's range syntax" in log


@pytest.mark.parametrize('ranges, fragment', [
    (['DCA2FF-201'], 'below the first counter'),
    (['DCA100-2FF'], 'overlap'),
    (['XX1-2'], 'ekm_seed.key_ranges[1]'),
])
def test_a_range_that_is_not_usable_stops_the_first_play(run, ranges, fragment):
    rc, seeds, log = run(ranges)
    assert rc != 0 and seeds == {}, log
    assert 'The key ranges of this run' in log and fragment in log and 'Nothing was changed.' in log, log
