# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.filter.alias_range import FilterModule

FILTERS = FilterModule().filters()
alias_range = FILTERS['alias_range']
alias_ranges = FILTERS['alias_ranges']
FILTER_DIR = os.path.dirname(os.path.abspath(__import__(FilterModule.__module__, fromlist=['_']).__file__))


def test_filter_names():
    assert sorted(FILTERS) == ['alias_range', 'alias_ranges']


@pytest.mark.parametrize('value', [
    {'prefix': 'DCA', 'first': 1, 'count': 3},
    {'prefix': 'dca', 'first': '1', 'last': '0x3'},
    'DCA001-003',
    ['DCA001-003'],
])
def test_alias_range_single(value):
    assert alias_range(value) == ['dca000000000000000001', 'dca000000000000000002', 'dca000000000000000003']


def test_alias_range_list_keeps_range_order():
    assert alias_range([{'prefix': 'dcb', 'first': 0, 'count': 1}, 'DCA00F-010']) == [
        'dcb000000000000000000', 'dca00000000000000000f', 'dca000000000000000010']
    assert alias_range([]) == []
    assert alias_range(spec for spec in ['DCA001-001', 'DCB001-001']) == ['dca000000000000000001', 'dcb000000000000000001']


@pytest.mark.parametrize('value, message', [
    (['DCA001-010', {'prefix': 'dca', 'first': 16, 'count': 1}],
     'Alias ranges DCA001-010 and DCA010-010 overlap: both contain dca000000000000000010.'),
    ({'prefix': 'DC', 'first': 1, 'count': 3}, "Alias range {prefix: 'DC', first: 1, count: 3}: the prefix 'DC' is not 3 letters (A-Z)."),
    ('DCA1FF', "Alias range 'DCA1FF' is not in EKM range syntax"),
    ({'prefix': 'dca', 'first': 0, 'last': 0xffffffff}, 'more than the 1000000 that can be listed at once'),
])
def test_alias_range_errors(value, message):
    with pytest.raises(AnsibleFilterError) as info:
        alias_range(value)
    assert message in str(info.value)


@pytest.mark.parametrize('value', [42, None, 1.5, b'DCA001-003'])
def test_alias_range_wrong_type(value):
    with pytest.raises(AnsibleFilterError) as info:
        alias_range(value)
    assert 'alias_range expects a range' in str(info.value)


def test_alias_ranges():
    aliases = ['dca000000000000000002', 'DCA000000000000000001', 'dca000000000000000003',
               'dca000000000000000010', 'Tape1', 'tape1']
    assert alias_ranges(aliases) == ['DCA001-003', 'dca000000000000000010', 'tape1']
    assert alias_ranges(tuple(aliases)) == ['DCA001-003', 'dca000000000000000010', 'tape1']
    assert alias_ranges([]) == []
    # ansible-core before 2.19 passes the output of map() on as a generator.
    assert alias_ranges(alias for alias in aliases) == ['DCA001-003', 'dca000000000000000010', 'tape1']


def test_filters_are_inverse():
    ranges = ['DCA001-1FF', 'DCA300-3FF', 'DCB000-000']
    assert alias_ranges(alias_range(ranges)) == ['DCA001-1FF', 'DCA300-3FF', 'dcb000000000000000000']


@pytest.mark.parametrize('value, message', [
    (['tape1', 'a,b'], "Alias 'a,b' contains a character that is not allowed"),
    (['x' * 13], 'has 13 characters'),
    ([5], 'is not a string'),
    ('dca000000000000000001', 'alias_ranges expects a list of aliases'),
    ({'prefix': 'dca'}, 'alias_ranges expects a list of aliases'),
    (None, 'alias_ranges expects a list of aliases'),
])
def test_alias_ranges_errors(value, message):
    with pytest.raises(AnsibleFilterError) as info:
        alias_ranges(value)
    assert message in str(info.value)


@pytest.mark.parametrize('name', ['alias_range', 'alias_ranges'])
def test_sidecar_documentation(name):
    with open(os.path.join(FILTER_DIR, name + '.yml')) as handle:
        doc = yaml.safe_load(handle)
    assert sorted(doc) == ['DOCUMENTATION', 'EXAMPLES', 'RETURN']
    assert doc['DOCUMENTATION']['name'] == name
    assert doc['DOCUMENTATION']['version_added'] == '0.1.0'
    assert doc['DOCUMENTATION']['positional'] == '_input'
    assert doc['DOCUMENTATION']['options']['_input']['required'] is True
    assert 'tapecrypt.ekm.%s' % name in doc['EXAMPLES']
    assert doc['RETURN']['_value']['type'] == 'list'
