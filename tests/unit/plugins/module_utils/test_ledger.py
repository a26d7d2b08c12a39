# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import json

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ledger


def use(volser, alias, created='2026-11-30T10:00:00Z', alias2=''):
    return {'volser': volser, 'key_alias_1': alias, 'key_alias_2': alias2, 'dki': '00', 'drive_serial': 'D1',
            'wwn': '57574E414D453030', 'created': created, 'extra': {}}


def test_append_is_deduplicated_and_survives_reload(tmp_path):
    path = str(tmp_path / 'l.jsonl')
    ledger = _ledger.Ledger.load(path)
    lines = ledger.new_lines([use('V1', 'DCA1'), use('V2', 'dca2'), use('V1', 'dca1')], 'ekm1', {'inode': 1, 'offset': 10})
    assert [line['t'] for line in lines] == ['use', 'use', 'position'], 'the same event twice is kept once'
    assert ledger.append(lines)
    first = open(path, 'rb').read()
    again = _ledger.Ledger.load(path)
    assert again.new_lines([use('V2', 'dca2')], 'ekm1', {'inode': 1, 'offset': 20}) == [], 'nothing new: not even a position'
    assert not again.append([]) and open(path, 'rb').read() == first
    assert again.positions == {'ekm1': {'inode': 1, 'offset': 10}}
    assert _ledger.verify_checksum(path) is None
    header = json.loads(first.splitlines()[0])
    assert header['format'] == 'tapecrypt-key-ledger' and header['version'] == 1
    more = again.new_lines([use('V3', 'dca1', created='2026-11-30T11:00:00Z')], 'ekm2', {'inode': 2, 'offset': 5})
    again.append(more)
    assert open(path, 'rb').read().startswith(first), 'append-only: the old bytes stay as they were'


def test_queries(tmp_path):
    ledger = _ledger.Ledger.load(str(tmp_path / 'l.jsonl'))
    ledger.new_lines([use('V1', 'dca1'), use('V1', 'dca2', created='t2'), use('V2', 'dca1', alias2='dcb9')], 'ekm1')
    assert ledger.aliases_for_volser('V1') == ['dca1', 'dca2'] and ledger.aliases_for_volser('V9') == []
    assert ledger.volsers_for_alias('DCA1') == ['V1', 'V2'] and ledger.volsers_for_alias('dcb9') == ['V2']
    assert ledger.never_seen(['DCA1', 'dca3', 'dcb9']) == ['dca3']
    assert ledger.aliases_used() == {'dca1': ['V1', 'V2'], 'dca2': ['V1'], 'dcb9': ['V2']}
    assert ledger.summary()['records'] == 3 and ledger.summary()['volsers'] == 2


def test_torn_last_line_is_ignored_then_set_apart(tmp_path):
    path = str(tmp_path / 'l.jsonl')
    ledger = _ledger.Ledger.load(path)
    ledger.append(ledger.new_lines([use('V1', 'dca1')], 'ekm1'))
    with open(path, 'a', encoding='utf-8') as f:
        f.write('{"t":"use","id":"torn')
    torn = _ledger.Ledger.load(path)
    assert len(torn.uses) == 1 and not torn.ends_clean
    torn.append(torn.new_lines([use('V2', 'dca2')], 'ekm1'))
    after = _ledger.Ledger.load(path)
    assert [u['volser'] for u in after.uses] == ['V1', 'V2'] and after.bad_lines == 1


@pytest.mark.parametrize('bad', ['', 'not json', '1,2', '{"t":"use","id":"x"},{"t":"use","id":"y"}', '[1', '"x"]'])
def test_bad_lines_between_good_ones_are_counted_and_the_rest_kept(tmp_path, bad):
    """The whole file is parsed at once; a line that is not one JSON value on its own must still count as bad, even
    where it would parse inside the bulk array (1,2) or together with its neighbour ([1 then 1])."""
    path = str(tmp_path / 'l.jsonl')
    ledger = _ledger.Ledger.load(path)
    ledger.append(ledger.new_lines([use('V1', 'dca1')], 'ekm1'))
    good = open(path, encoding='utf-8').read().splitlines()
    extra = _ledger.Ledger.load(str(tmp_path / 'other.jsonl')).new_lines([use('V2', 'dca2')])
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(good[:2] + [bad] + [json.dumps(extra[0])] + good[2:] + ['1']) + '\n')
    again = _ledger.Ledger.load(path)
    assert [u['volser'] for u in again.uses] == ['V1', 'V2']
    assert again.bad_lines == 2, 'the bad line and the number 1 (no record) are both counted'
    assert again.ends_clean


def test_merge_needs_a_matching_checksum(tmp_path):
    a, b = str(tmp_path / 'a.jsonl'), str(tmp_path / 'b.jsonl')
    la = _ledger.Ledger.load(a)
    la.append(la.new_lines([use('V1', 'dca1'), use('V2', 'dca2')], 'ekm1'))
    lb = _ledger.Ledger.load(b)
    lb.append(lb.new_lines([use('V2', 'dca2'), use('V3', 'dca3')], 'ekm2'))
    assert _ledger.merge(lb, _ledger.Ledger.load(a)) == 1
    assert sorted(u['volser'] for u in _ledger.Ledger.load(b).uses) == ['V1', 'V2', 'V3']
    with open(a, 'a', encoding='utf-8') as f:
        f.write('{"t":"use","id":"x","volser":"EVIL","key_alias_1":"k"}\n')
    with pytest.raises(_ledger.LedgerError, match='does not match its checksum'):
        _ledger.merge(lb, _ledger.Ledger.load(a))


def test_not_a_ledger_is_refused(tmp_path):
    path = tmp_path / 'x.jsonl'
    path.write_text('{"hello": 1}\n')
    with pytest.raises(_ledger.LedgerError, match='is not a key-usage ledger'):
        _ledger.Ledger.load(str(path))
    path.write_text('{"format": "tapecrypt-key-ledger", "version": 9}\n')
    with pytest.raises(_ledger.LedgerError, match='version 9 ledger'):
        _ledger.Ledger.load(str(path))


def test_record_id_ignores_who_collected_and_when():
    base = _ledger.normalize(use('V1', 'DCA1'))
    assert _ledger.record_id(base) == _ledger.record_id(_ledger.normalize({**use('V1', 'dca1'), 'server': 'x'}))
    assert _ledger.record_id(base) != _ledger.record_id(_ledger.normalize(use('V1', 'dca1', created='other')))
