# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import os

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils._ekm_records import (
    MAX_RECORD,
    RecordError,
    audit_files,
    parse_audit_fields,
    read_audit,
    read_metadata,
)

AUDIT_1 = (
    'runtime:[timestamp=2026-11-30T10:00:00Z message=Server started port=3801]\n'
    'data_synchronization:[timestamp=2026-11-30T10:05:00Z message=Error sending data to other EKM\n'
    '  server=ekm2.example.com:3801 action=sync\n'
    '  command type=sync user=admin]\n'
    'not a record at all\n'
    'vendor_new_type:[timestamp=2026-11-30T10:06:00Z Colour=blue shade=very dark blue]\n'
)


def write(path, text, mode='w'):
    with open(path, mode, encoding='utf-8') as f:
        f.write(text)


def test_fields_hold_blanks_and_the_two_word_name():
    assert parse_audit_fields('timestamp=T message=Error sending data to other EKM command type=sync user=a b') == {
        'timestamp': 'T', 'message': 'Error sending data to other EKM', 'command type': 'sync', 'user': 'a b'}


def test_audit_records_continuations_unknown_types_and_kinds(tmp_path):
    write(tmp_path / 'ekm.log.100', AUDIT_1)
    result = read_audit(str(tmp_path), 'ekm.log')
    types = [r['type'] for r in result['records']]
    assert types == ['runtime', 'data_synchronization', 'vendor_new_type']
    sync = result['records'][1]
    assert sync['kind'] == 'sync_failure' and sync['timestamp'] == '2026-11-30T10:05:00Z'
    assert sync['fields'] == {'message': 'Error sending data to other EKM', 'server': 'ekm2.example.com:3801',
                              'action': 'sync', 'command type': 'sync', 'user': 'admin'}
    assert result['records'][2]['fields'] == {'Colour': 'blue', 'shade': 'very dark blue'}
    assert result['records'][2]['kind'] is None
    assert result['unparsed_lines'] == 1
    assert result['position'] == {'file': 'ekm.log.100', 'offset': len(AUDIT_1.encode())}


def test_audit_reads_on_from_a_position_across_numbered_files(tmp_path):
    write(tmp_path / 'ekm.log.100', AUDIT_1)
    write(tmp_path / 'ekm.log.99', 'runtime:[timestamp=2026-11-29T00:00:00Z message=old]\n')
    write(tmp_path / 'other.log.5', 'runtime:[timestamp=x message=not ours]\n')
    assert audit_files(str(tmp_path), 'ekm.log') == [(99, 'ekm.log.99'), (100, 'ekm.log.100')]
    first = read_audit(str(tmp_path), 'ekm.log')
    assert len(first['records']) == 4
    assert read_audit(str(tmp_path), 'ekm.log', first['position'])['records'] == []
    write(tmp_path / 'ekm.log.100', 'runtime:[timestamp=2026-11-30T11:00:00Z message=Received and processed stopekm command]\n',
          'a')
    write(tmp_path / 'ekm.log.1000', 'runtime:[timestamp=2026-11-30T12:00:00Z message=New drive discovered drive=D9]\n')
    later = read_audit(str(tmp_path), 'ekm.log', first['position'])
    assert [r['kind'] for r in later['records']] == ['stop', 'new_drive']
    assert later['position']['file'] == 'ekm.log.1000'
    assert [r['kind'] for r in read_audit(str(tmp_path), 'ekm.log', since='2026-11-30T11:30:00Z')['records']] == ['new_drive']


def test_audit_record_being_written_is_not_consumed(tmp_path):
    path = tmp_path / 'ekm.log.1'
    write(path, 'runtime:[timestamp=T1 message=a]\nruntime:[timestamp=T2 message=b\n  more=1')
    first = read_audit(str(tmp_path), 'ekm.log')
    assert [r['timestamp'] for r in first['records']] == ['T1']
    write(path, ']\n', 'a')
    second = read_audit(str(tmp_path), 'ekm.log', first['position'])
    assert [(r['timestamp'], r['fields']) for r in second['records']] == [('T2', {'message': 'b', 'more': '1'})]


def test_audit_limit_and_resume(tmp_path):
    write(tmp_path / 'a.1', ''.join(f'runtime:[timestamp=T{i:03} message=m]\n' for i in range(25)))
    seen, position = [], None
    while True:
        result = read_audit(str(tmp_path), 'a', position, limit=10)
        seen += [r['timestamp'] for r in result['records']]
        position = result['position']
        if not result['more']:
            break
    assert seen == [f'T{i:03}' for i in range(25)]


def test_audit_huge_record_is_cut_not_held(tmp_path):
    write(tmp_path / 'a.1', 'runtime:[timestamp=T message=x\n' + ''.join('  filler=' + 'y' * 1000 + '\n' for _line in range(200))
          + '  end=1]\nruntime:[timestamp=U message=after]\n')
    records = read_audit(str(tmp_path), 'a')['records']
    assert [r['timestamp'] for r in records] == ['T', 'U']
    assert sum(len(v) for v in records[0]['fields'].values()) <= MAX_RECORD


def test_missing_audit_directory_names_it(tmp_path):
    with pytest.raises(RecordError, match='cannot list audit directory .*nowhere'):
        read_audit(str(tmp_path / 'nowhere'), 'a')


def meta(volser, alias, extra=''):
    return (f'<KeyUsageEvent><DriveSSN>D1</DriveSSN><DriveWWN>57574E414D453030</DriveWWN>'
            f'<CreationDate>2026-11-30T10:00:00Z</CreationDate><KeyAlias1>{alias}</KeyAlias1><KeyAlias2></KeyAlias2>'
            f'<DKi>00ff</DKi><VolSer>{volser}</VolSer>{extra}</KeyUsageEvent>\n')


def test_metadata_fields_unknown_elements_and_escapes(tmp_path):
    current = str(tmp_path / 'm.xml')
    write(current, meta('TAPE01', 'dca000000000000000001', '<Future a="1">x &amp; y</Future><Empty/>'))
    (record,) = read_metadata(current)['records']
    assert record == {'drive_serial': 'D1', 'wwn': '57574E414D453030', 'created': '2026-11-30T10:00:00Z',
                      'key_alias_1': 'dca000000000000000001', 'key_alias_2': '', 'dki': '00ff', 'volser': 'TAPE01',
                      'extra': {'Future': 'x & y', 'Empty': ''}}


def test_metadata_element_names_can_be_overridden(tmp_path):
    current = str(tmp_path / 'm.xml')
    write(current, '<Usage>\n <Tape>VOL1</Tape>\n <Alias>k1</Alias>\n</Usage>\n<KeyUsageEvent><VolSer>NO</VolSer></KeyUsageEvent>\n')
    records = read_metadata(current, elements={'record': 'Usage', 'volser': 'Tape', 'key_alias_1': 'Alias'})['records']
    assert [(r['volser'], r['key_alias_1']) for r in records] == [('VOL1', 'k1')]
    with pytest.raises(RecordError, match='unknown metadata fields colour'):
        read_metadata(current, elements={'colour': 'Colour'})


def test_metadata_follows_rotation_by_inode(tmp_path):
    current, previous = str(tmp_path / 'm.xml'), str(tmp_path / 'm.xml.1')
    write(current, meta('V1', 'a') + meta('V2', 'b'))
    first = read_metadata(current)
    assert [r['volser'] for r in first['records']] == ['V1', 'V2'] and not first['gap']
    write(current, meta('V3', 'c'), 'a')
    os.replace(current, previous)                      # EKM's rotation: current becomes previous
    write(current, meta('V4', 'd'))
    second = read_metadata(current, position=first['position'])
    assert [r['volser'] for r in second['records']] == ['V3', 'V4'] and not second['gap']
    assert read_metadata(current, position=second['position'])['records'] == []
    # Rotated twice since the position: both files are read whole and the possible loss is flagged.
    os.replace(current, previous)
    write(current, meta('V5', 'e'))
    os.replace(current, previous)
    write(current, meta('V6', 'f'))
    third = read_metadata(current, position=second['position'])
    assert [r['volser'] for r in third['records']] == ['V5', 'V6'] and third['gap']


def test_metadata_partial_record_waits_and_limit_resumes(tmp_path):
    current = str(tmp_path / 'm.xml')
    whole = meta('V1', 'a') + meta('V2', 'b')
    write(current, whole + meta('V3', 'c')[:40])
    first = read_metadata(current)
    assert [r['volser'] for r in first['records']] == ['V1', 'V2'] and first['position']['offset'] == len(whole)
    write(current, meta('V3', 'c')[40:], 'a')
    assert [r['volser'] for r in read_metadata(current, position=first['position'])['records']] == ['V3']
    page = read_metadata(current, limit=2)
    assert page['more'] and [r['volser'] for r in page['records']] == ['V1', 'V2']
    assert [r['volser'] for r in read_metadata(current, position=page['position'])['records']] == ['V3']


def test_metadata_missing_files_read_as_empty(tmp_path):
    result = read_metadata(str(tmp_path / 'none.xml'))
    assert result['records'] == [] and not result['gap']
