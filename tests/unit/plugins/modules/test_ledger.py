# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

from ansible_collections.tapecrypt.ekm.plugins.modules import ledger
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

RECORDS = [{'volser': f'VOL{i:03}', 'key_alias_1': f'DCA{i % 3}', 'key_alias_2': '', 'dki': '00', 'drive_serial': 'D1',
            'wwn': '', 'created': f'2026-11-30T10:00:{i:02}Z', 'extra': {}} for i in range(10)]


def test_collect_check_mode_idempotence_and_queries(tmp_path):
    path = str(tmp_path / 'ledger.jsonl')
    args = {'path': path, 'records': RECORDS, 'server': 'ekm1', 'position': {'inode': 5, 'offset': 100, 'head': 'ab'}}
    check = run_module(ledger.main, args, check_mode=True)
    assert check['changed'] and check['added'] == 11 and not os.path.exists(path)
    first = run_module(ledger.main, args)
    assert first['changed'] and first['added'] == 11 and first['ledger']['records'] == 10
    assert first['ledger']['checksum_ok'] is True and oct(os.stat(path).st_mode & 0o777) == '0o600'
    second = run_module(ledger.main, args)
    assert not second['changed'] and second['added'] == 0
    query = run_module(ledger.main, {'path': path, 'volser': 'VOL004', 'alias': 'dca1',
                                     'keystore_aliases': ['dca0', 'dca1', 'dca2', 'dca3'], 'list_aliases': True,
                                     'count_by_alias': True})
    assert not query['changed']
    assert query['aliases'] == ['dca1'] and query['volsers'] == ['VOL001', 'VOL004', 'VOL007']
    assert query['never_seen'] == ['dca3'] and sorted(query['aliases_used']) == ['dca0', 'dca1', 'dca2']
    assert query['cartridges_per_key'] == {'dca0': 4, 'dca1': 3, 'dca2': 3}
    assert query['positions'] == {'ekm1': {'inode': 5, 'offset': 100, 'head': 'ab'}}


def test_changed_ledger_is_not_appended_to(tmp_path):
    path = str(tmp_path / 'ledger.jsonl')
    run_module(ledger.main, {'path': path, 'records': RECORDS[:2], 'server': 'ekm1'})
    with open(path, 'a', encoding='utf-8') as f:
        f.write('{"t":"use","id":"forged","volser":"X","key_alias_1":"k"}\n')
    failed = run_module(ledger.main, {'path': path, 'records': RECORDS[2:], 'server': 'ekm1'}, expect_fail=True)
    assert 'does not match its checksum' in failed['msg'] and failed['msg'].endswith('Nothing was changed.')
    assert run_module(ledger.main, {'path': path})['ledger']['checksum_ok'] is False


def test_merge_from_a_copy(tmp_path):
    main, copy = str(tmp_path / 'main.jsonl'), str(tmp_path / 'copy.jsonl')
    run_module(ledger.main, {'path': main, 'records': RECORDS, 'server': 'ekm1'})
    merged = run_module(ledger.main, {'path': copy, 'merge_from': main})
    assert merged['changed'] and merged['ledger']['records'] == 10
    assert not run_module(ledger.main, {'path': copy, 'merge_from': main})['changed']
    missing = run_module(ledger.main, {'path': copy, 'merge_from': str(tmp_path / 'none')}, expect_fail=True)
    assert 'does not exist' in missing['msg']


def test_missing_directory_fails_naming_it(tmp_path):
    failed = run_module(ledger.main, {'path': str(tmp_path / 'no' / 'l.jsonl'), 'records': []}, expect_fail=True)
    assert 'does not exist; create it first' in failed['msg']
