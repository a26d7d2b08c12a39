# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import dataclasses
import random
import time

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import (
    COUNTER_LIMIT,
    EXPAND_LIMIT,
    AliasError,
    AliasRange,
    compress,
    expand,
    format_symmetric_key_set,
    normalize_alias,
    parse_range,
    parse_ranges,
    parse_symmetric_key_set,
    split_sequential,
)

MAX_COUNTER = COUNTER_LIMIT - 1


def sequential_alias(prefix, n):
    """The alias of counter ``n``, through the validating constructor of a one-alias range."""
    return AliasRange(prefix, n, n).first_alias


def _error(func, *args, **kwargs):
    with pytest.raises(AliasError) as info:
        func(*args, **kwargs)
    return str(info.value)


# --- single aliases ----------------------------------------------------------------------------

def test_alias_error_is_a_value_error():
    assert issubclass(AliasError, ValueError)


@pytest.mark.parametrize('prefix, n, expected', [
    ('dca', 0, 'dca000000000000000000'),
    ('DCA', 1, 'dca000000000000000001'),
    ('Thz', 0xff, 'thz0000000000000000ff'),
    ('abc', MAX_COUNTER, 'abc00ffffffffffffffff'),
])
def test_sequential_alias(prefix, n, expected):
    alias = sequential_alias(prefix, n)
    assert alias == expected
    assert len(alias) == 21


@pytest.mark.parametrize('prefix, n, fragment', [
    ('dc', 1, "prefix 'dc'"),
    ('dcab', 1, "prefix 'dcab'"),
    ('d1a', 1, "prefix 'd1a'"),
    ('dçа', 1, 'prefix'),  # non-ASCII letters are not EKM prefix letters
    ('dca', -1, 'negative'),
    ('dca', COUNTER_LIMIT, 'out of the alias space'),
    ('dca', '5', 'not an integer'),
    ('dca', True, 'not an integer'),
])
def test_sequential_alias_rejects(prefix, n, fragment):
    assert fragment in _error(sequential_alias, prefix, n)


@pytest.mark.parametrize('alias, expected', [
    ('abcfrg', 'abcfrg'),
    ('IBMKEY123TAP', 'ibmkey123tap'),
    ('123456Tape', '123456tape'),
    ('x', 'x'),
    ('!~#$%&()*+./', '!~#$%&()*+./'),
    ('tape-1', 'tape-1'),
    ('abc000000000000000001', 'abc000000000000000001'),
    ('ABC00A0120FA000000001', 'abc00a0120fa000000001'),
    ('kmb0000034acd2345678a', 'kmb0000034acd2345678a'),
])
def test_normalize_alias_accepts(alias, expected):
    assert normalize_alias(alias) == expected


@pytest.mark.parametrize('alias, fragment', [
    ('', 'cannot be empty'),
    ('abcefghij1234567', "'abcefghij1234567' has 16 characters"),   # IBM's own example of a wrong length
    ('abcg0000000000000001', "'abcg0000000000000001' has 20 characters"),  # IBM: prefix longer than 3
    ('abc010000000000000001', "'abc010000000000000001' has 21 characters, so it must be a sequential alias"),
    ('ab1000000000000000001', 'must be a sequential alias'),
    ('abc00000000000000000g', 'must be a sequential alias'),
    ('abcd00000000000000000001', 'has 24 characters'),
    ('a,b', "'a,b' contains a character"),
    ('a b', "'a b' contains a character"),
    ('tape\t1', 'contains a character'),
    ('clé', 'contains a character'),
    ('x' * 13, 'has 13 characters'),
])
def test_normalize_alias_rejects(alias, fragment):
    message = _error(normalize_alias, alias)
    assert fragment in message
    assert message.endswith('.')


def test_normalize_alias_comma_message_explains_why():
    assert 'symmetricKeySet' in _error(normalize_alias, 'a,b')


@pytest.mark.parametrize('alias', [123456, None, b'abc', ['abc']])
def test_normalize_alias_rejects_non_strings(alias):
    assert 'not a string' in _error(normalize_alias, alias)


@pytest.mark.parametrize('alias, expected', [
    ('dca000000000000000005', ('dca', 5)),
    ('DCA0000000000000001FF', ('dca', 0x1ff)),
    ('abc00ffffffffffffffff', ('abc', MAX_COUNTER)),
    ('tape1', None),
    ('dca005', None),
    ('abc010000000000000001', None),
    ('', None),
    (None, None),
    (5, None),
])
def test_split_sequential(alias, expected):
    assert split_sequential(alias) == expected


def test_split_sequential_inverts_sequential_alias():
    for n in (0, 1, 0xabcdef, MAX_COUNTER):
        assert split_sequential(sequential_alias('xyz', n)) == ('xyz', n)


# --- AliasRange --------------------------------------------------------------------------------

def test_alias_range_basics():
    alias_range = AliasRange('DCA', 1, 0x1ff)
    assert alias_range.prefix == 'dca'
    assert (alias_range.first, alias_range.last) == (1, 511)
    assert alias_range.count == 511
    assert len(alias_range) == 511
    assert alias_range.first_alias == 'dca000000000000000001'
    assert alias_range.last_alias == 'dca0000000000000001ff'
    aliases = list(alias_range)
    assert aliases[0] == alias_range.first_alias
    assert aliases[-1] == alias_range.last_alias
    assert len(aliases) == 511
    assert aliases == [sequential_alias('dca', n) for n in range(1, 512)]


def test_alias_range_is_immutable_and_hashable():
    alias_range = AliasRange('dca', 1, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        alias_range.last = 5
    assert alias_range == AliasRange('DCA', 1, 2)
    assert len({alias_range, AliasRange('DCA', 1, 2)}) == 1
    assert sorted([AliasRange('dcb', 0, 1), AliasRange('dca', 5, 6), AliasRange('dca', 1, 2)]) == [
        AliasRange('dca', 1, 2), AliasRange('dca', 5, 6), AliasRange('dcb', 0, 1)]


def test_alias_range_contains():
    alias_range = AliasRange('dca', 0x10, 0x20)
    assert 'dca000000000000000010' in alias_range
    assert 'DCA000000000000000020' in alias_range
    assert 'dca00000000000000000f' not in alias_range
    assert 'dca000000000000000021' not in alias_range
    assert 'dcb000000000000000010' not in alias_range
    assert 'tape1' not in alias_range
    assert 16 not in alias_range


@pytest.mark.parametrize('other, expected', [
    (AliasRange('dca', 0, 9), False),
    (AliasRange('dca', 0, 10), True),
    (AliasRange('dca', 15, 15), True),
    (AliasRange('dca', 20, 30), True),
    (AliasRange('dca', 21, 30), False),
    (AliasRange('dca', 0, 100), True),
    (AliasRange('dcb', 10, 20), False),
])
def test_alias_range_overlaps(other, expected):
    alias_range = AliasRange('dca', 10, 20)
    assert alias_range.overlaps(other) is expected
    assert other.overlaps(alias_range) is expected


@pytest.mark.parametrize('alias_range, expected', [
    (AliasRange('dca', 1, 0x1ff), 'DCA001-1FF'),
    (AliasRange('thz', 1, 0xff), 'THZ001-0FF'),
    (AliasRange('ibm', 1, 0xa), 'IBM001-00A'),
    (AliasRange('dca', 0, 0), 'DCA000-000'),
    (AliasRange('dca', 0x100, 0x1000), 'DCA0100-1000'),
    (AliasRange('abc', 0, MAX_COUNTER), 'ABC0000000000000000-FFFFFFFFFFFFFFFF'),
])
def test_alias_range_to_ekm(alias_range, expected):
    assert alias_range.to_ekm() == expected
    assert str(alias_range) == expected
    assert parse_range(expected) == alias_range


@pytest.mark.parametrize('args, fragment', [
    (('dc', 1, 2), "prefix 'dc' is not 3 letters"),
    ((None, 1, 2), 'prefix None'),
    (('dca', -1, 2), 'first counter -1 is negative'),
    (('dca', 3, 2), 'below the first counter'),
    (('dca', 0, COUNTER_LIMIT), 'out of the alias space'),
    (('dca', 1.0, 2), 'not an integer'),
    (('dca', 1, False), 'not an integer'),
])
def test_alias_range_rejects(args, fragment):
    assert fragment in _error(AliasRange, *args)


def test_full_alias_space_range_works_without_len():
    everything = AliasRange('abc', 0, MAX_COUNTER)
    assert everything.count == COUNTER_LIMIT
    assert everything
    assert 'abc00ffffffffffffffff' in everything
    assert 'too many for len()' in _error(len, everything)
    assert next(iter(everything)) == 'abc000000000000000000'


# --- parse_range -------------------------------------------------------------------------------

@pytest.mark.parametrize('spec, expected', [
    ({'prefix': 'DCA', 'first': 1, 'last': 511}, AliasRange('dca', 1, 511)),
    ({'prefix': 'DCA', 'first': 1, 'count': 512}, AliasRange('dca', 1, 512)),
    ({'prefix': 'dca', 'first': 1, 'last': 4, 'count': 4}, AliasRange('dca', 1, 4)),
    ({'prefix': 'dca', 'first': '1', 'last': '511'}, AliasRange('dca', 1, 511)),
    ({'prefix': 'dca', 'first': ' 16 ', 'count': '0x10'}, AliasRange('dca', 16, 31)),
    ({'prefix': 'dca', 'first': '0x1', 'last': '0X1FF'}, AliasRange('dca', 1, 511)),
    ({'prefix': 'dca', 'first': 0, 'last': MAX_COUNTER}, AliasRange('dca', 0, MAX_COUNTER)),
    ({'prefix': 'dca', 'first': MAX_COUNTER, 'count': 1}, AliasRange('dca', MAX_COUNTER, MAX_COUNTER)),
    # Ansible passes options that were not given as None.
    ({'prefix': 'dca', 'first': 1, 'last': None, 'count': 3}, AliasRange('dca', 1, 3)),
    ({'prefix': 'dca', 'first': 1, 'last': 3, 'count': None}, AliasRange('dca', 1, 3)),
    ('DCA001-1FF', AliasRange('dca', 1, 511)),
    ('THZ001-FF', AliasRange('thz', 1, 255)),
    ('ibm1-a', AliasRange('ibm', 1, 10)),
    ('xyz01-fff', AliasRange('xyz', 1, 0xfff)),
    ('  DCA001-1FF ', AliasRange('dca', 1, 511)),
    ('ABCABC-FFF', AliasRange('abc', 0xabc, 0xfff)),
    ('abc000000000000000000-00ffffffffffffffff', AliasRange('abc', 0, MAX_COUNTER)),
    ('abc' + 'f' * 15 + '-' + 'f' * 16, AliasRange('abc', 16 ** 15 - 1, MAX_COUNTER)),
    (AliasRange('dca', 1, 2), AliasRange('dca', 1, 2)),
])
def test_parse_range(spec, expected):
    assert parse_range(spec) == expected


@pytest.mark.parametrize('spec, fragment', [
    ({'prefix': 'DC', 'first': 1, 'last': 2}, "prefix 'DC' is not 3 letters"),
    ({'prefix': 'DCAB', 'first': 1, 'last': 2}, "prefix 'DCAB' is not 3 letters"),
    ({'prefix': 123, 'first': 1, 'last': 2}, 'prefix 123 is not 3 letters'),
    ({'first': 1, 'last': 2}, 'prefix is missing'),
    ({'prefix': 'dca', 'last': 2}, 'first is missing'),
    ({'prefix': 'dca', 'first': 1}, 'give either last or count'),
    ({'prefix': 'dca', 'first': 1, 'last': None, 'count': None}, 'give either last or count'),
    ({'prefix': 'dca', 'first': -1, 'last': 2}, 'first must not be negative'),
    ({'prefix': 'dca', 'first': '-1', 'count': 2}, 'first must not be negative'),
    ({'prefix': 'dca', 'first': 5, 'last': 4}, 'last (4) is below first (5)'),
    ({'prefix': 'dca', 'first': 5, 'count': 0}, 'count must be at least 1'),
    ({'prefix': 'dca', 'first': 5, 'count': -3}, 'count must be at least 1'),
    ({'prefix': 'dca', 'first': 1, 'last': 5, 'count': 4}, 'last and count disagree'),
    ({'prefix': 'dca', 'first': 0, 'last': COUNTER_LIMIT}, 'out of the alias space'),
    ({'prefix': 'dca', 'first': MAX_COUNTER, 'count': 2}, 'out of the alias space'),
    ({'prefix': 'dca', 'first': 10 ** 30, 'count': 1}, 'out of the alias space'),
    ({'prefix': 'dca', 'first': '9' * 5000, 'count': 1}, 'out of the alias space'),
    ({'prefix': 'dca', 'first': '1FF', 'last': 2}, "first '1FF' is not an integer"),
    ({'prefix': 'dca', 'first': '1.5', 'last': 2}, "first '1.5' is not an integer"),
    ({'prefix': 'dca', 'first': '١', 'last': 2}, 'is not an integer'),  # Arabic-Indic digit one
    ({'prefix': 'dca', 'first': 1.0, 'last': 2}, 'first must be an integer'),
    ({'prefix': 'dca', 'first': True, 'last': 2}, 'not a boolean'),
    ({'prefix': 'dca', 'first': 1, 'last': 2, 'size': 3}, 'unknown key(s) size'),
    ({'prefix': 'dca', 'first': 1, 'last': 2, 'Last': 3, 'b': 1}, 'unknown key(s) Last, b'),
    ('DCA1FF', 'not in EKM range syntax'),
    ('DC001-1FF', 'not in EKM range syntax'),
    ('DCA001-1FG', 'not in EKM range syntax'),
    ('DCA001--1FF', 'not in EKM range syntax'),
    ('DCA-1FF', 'not in EKM range syntax'),
    ('DCA001-', 'not in EKM range syntax'),
    ('DCA0000000000000000001-2', 'not in EKM range syntax'),  # 19 digits
    ('DCA010000000000000000-010000000000000001', "18 hex digits must start with '00'"),
    ('DCA1-10000000000000000', 'out of the alias space'),  # 17 digits, beyond 16**16 - 1
    ('DCA1FF-001', 'below the first counter'),
    (42, 'neither a mapping'),
    (None, 'neither a mapping'),
    (['DCA001-1FF'], 'neither a mapping'),
])
def test_parse_range_rejects(spec, fragment):
    message = _error(parse_range, spec)
    assert fragment in message
    assert message.startswith('Alias range')
    assert message.endswith('.')


def test_parse_range_error_names_the_spec():
    message = _error(parse_range, {'prefix': 'dca', 'first': 1, 'count': 0})
    assert message == "Alias range {prefix: 'dca', first: 1, count: 0}: count must be at least 1."


# --- parse_ranges / overlaps -------------------------------------------------------------------

def test_parse_ranges_keeps_order():
    ranges = parse_ranges(['DCB001-00F', {'prefix': 'dca', 'first': 1, 'count': 16}, 'DCA011-01F'])
    assert ranges == [AliasRange('dcb', 1, 15), AliasRange('dca', 1, 16), AliasRange('dca', 17, 31)]


def test_parse_ranges_adjacent_and_other_prefixes_do_not_overlap():
    assert len(parse_ranges(['DCA000-0FF', 'DCA100-1FF', 'DCB000-1FF'])) == 3


def test_parse_ranges_single_and_empty():
    assert parse_ranges('DCA001-002') == [AliasRange('dca', 1, 2)]
    assert parse_ranges({'prefix': 'dca', 'first': 1, 'count': 2}) == [AliasRange('dca', 1, 2)]
    assert parse_ranges([]) == []
    assert parse_ranges(None) == []
    assert parse_ranges(spec for spec in ['DCA001-002']) == [AliasRange('dca', 1, 2)]


@pytest.mark.parametrize('specs, expected', [
    (['DCA001-1FF', 'DCA100-2FF'], 'Alias ranges DCA001-1FF and DCA100-2FF overlap: both contain dca000000000000000100.'),
    (['DCA100-2FF', 'DCA001-1FF'], 'Alias ranges DCA001-1FF and DCA100-2FF overlap: both contain dca000000000000000100.'),
    # equal ranges count once, but a range that overlaps one of them is still refused
    (['DCA001-1FF', 'DCA001-1FF', 'DCA001-1FE'], 'Alias ranges DCA001-1FE and DCA001-1FF overlap: both contain dca000000000000000001.'),
    ([{'prefix': 'dca', 'first': 1, 'last': 200}, {'prefix': 'DCA', 'first': 1, 'count': 201}],
     'Alias ranges DCA001-0C8 and DCA001-0C9 overlap'),
    # the second range lies wholly inside the first
    (['DCA000-FFF', 'DCA010-020', 'DCB000-FFF'], 'Alias ranges DCA000-FFF and DCA010-020 overlap: both contain dca000000000000000010.'),
    # given in another order and mixed with another prefix
    (['DCB000-001', 'DCA800-900', 'DCA000-7FF', 'DCA7FF-7FF'], 'Alias ranges DCA000-7FF and DCA7FF-7FF overlap'),
    ([{'prefix': 'dca', 'first': 1, 'count': 10}, 'dca00a-00a'], 'Alias ranges DCA001-00A and DCA00A-00A overlap'),
])
def test_parse_ranges_rejects_overlaps(specs, expected):
    assert _error(parse_ranges, specs).startswith(expected)


def test_parse_ranges_takes_equal_ranges_as_one():
    # The same range written with last, with count and in EKM's syntax (a regression: refused as overlapping itself).
    specs = [{'prefix': 'DCA', 'first': 1, 'last': 200}, 'DCB001-002', {'prefix': 'dca', 'first': 1, 'count': 200},
             'DCA001-0C8', {'prefix': 'DCA', 'first': '0x1', 'last': '0xc8'}]
    assert parse_ranges(specs) == [AliasRange('dca', 1, 200), AliasRange('dcb', 1, 2)]
    assert expand(specs, limit=None) == expand(['DCA001-0C8', 'DCB001-002'], limit=None)
    assert len(expand(specs, limit=None)) == 202


def test_parse_ranges_rejects_non_lists():
    assert 'must be given as a list' in _error(parse_ranges, 42)
    assert 'must be given as a list' in _error(parse_ranges, b'DCA001-002')


# --- expand ------------------------------------------------------------------------------------

def test_expand():
    assert expand([AliasRange('dcb', 1, 2), 'DCA00F-010', {'prefix': 'abc', 'first': 0, 'count': 1}]) == [
        'dcb000000000000000001', 'dcb000000000000000002',
        'dca00000000000000000f', 'dca000000000000000010',
        'abc000000000000000000',
    ]
    assert expand([]) == []


def test_expand_refuses_overlaps():
    assert 'overlap' in _error(expand, ['DCA001-010', 'DCA010-020'])


def test_expand_limit():
    assert len(expand(['DCA000-0FF'], limit=256)) == 256
    message = _error(expand, ['DCA000-0FF', 'DCB000-000'], limit=256)
    assert message == ('The alias ranges DCA000-0FF, DCB000-000 hold 257 aliases, more than the 256 that can be '
                       'listed at once; check the ranges for a typo.')
    # The default limit stops a typo before it exhausts memory.
    assert 'more than the %d' % EXPAND_LIMIT in _error(expand, [{'prefix': 'dca', 'first': 0, 'last': 0xffffffff}])
    assert len(expand(['DCA000-0FF'], limit=None)) == 256


# --- compress ----------------------------------------------------------------------------------

def test_compress():
    aliases = [
        'tape1', 'dca000000000000000003', 'DCA000000000000000001', 'dca000000000000000002',
        'dca000000000000000002', 'dcb000000000000000005', 'abc', 'dca00000000000000000a',
        'dca00000000000000000b', 'Tape1', 'aaa000000000000000007',
    ]
    assert compress(aliases) == [
        'aaa000000000000000007', 'DCA001-003', 'DCA00A-00B', 'dcb000000000000000005', 'abc', 'tape1',
    ]


def test_compress_orders_runs_and_lone_aliases_by_counter():
    assert compress(['dca000000000000000010', 'dca000000000000000001', 'dca000000000000000002']) == [
        'DCA001-002', 'dca000000000000000010']


def test_compress_empty_and_large_counters():
    assert compress([]) == []
    assert compress(['abc00fffffffffffffffe', 'abc00ffffffffffffffff']) == ['ABCFFFFFFFFFFFFFFFE-FFFFFFFFFFFFFFFF']


def test_compress_rejects_invalid_aliases():
    assert "'a,b'" in _error(compress, ['tape1', 'a,b'])
    assert 'must be given as a list' in _error(compress, 'dca000000000000000001')
    assert 'must be given as a list' in _error(compress, 42)


@pytest.mark.parametrize('seed', range(5))
def test_compress_expand_round_trip(seed):
    rng = random.Random(seed)
    counters = {prefix: rng.sample(range(200), rng.randint(1, 120)) for prefix in ('dca', 'dcb', 'zzz')}
    aliases = [sequential_alias(prefix, n) for prefix, numbers in counters.items() for n in numbers]
    plain = ['tape%d' % rng.randint(0, 9) for _count in range(5)]
    items = compress(aliases + plain)
    ranges, singles = parse_symmetric_key_set(','.join(items))
    assert sorted(expand(ranges) + singles) == sorted(set(aliases + plain))
    # Nothing that could have been a range was left as single aliases, and ranges never touch.
    for prefix, numbers in counters.items():
        numbers = sorted(numbers)
        runs = sum(1 for i, n in enumerate(numbers) if i == 0 or numbers[i - 1] != n - 1)
        assert len([r for r in ranges if r.prefix == prefix]) + len(
            [s for s in singles if s.startswith(prefix) and len(s) == 21]) == runs


def test_expand_and_compress_100000_aliases_quickly():
    ranges = [AliasRange('dca', 0, 49999), AliasRange('dcb', 0x10000, 0x10000 + 49999)]
    started = time.perf_counter()
    aliases = expand(ranges)
    items = compress(aliases)
    elapsed = time.perf_counter() - started
    assert len(aliases) == 100000
    assert items == ['DCA0000-C34F', 'DCB10000-1C34F']
    # Both run on every no-change module run; typically about 0.1 s together.
    assert elapsed < 2.0, elapsed


def test_compress_100000_scattered_aliases_quickly():
    aliases = [sequential_alias('dca', n) for n in range(0, 200000, 2)]
    random.Random(1).shuffle(aliases)
    started = time.perf_counter()
    items = compress(aliases)
    elapsed = time.perf_counter() - started
    assert len(items) == 100000
    assert elapsed < 2.0, elapsed


# --- symmetricKeySet ---------------------------------------------------------------------------

def test_parse_symmetric_key_set_vendor_example():
    # The example from Dell's guide.
    ranges, aliases = parse_symmetric_key_set('KMA0238ab34,KMB0000034acd2345678a,THZ001-FF')
    assert ranges == [AliasRange('thz', 1, 0xff)]
    assert aliases == ['kma0238ab34', 'kmb0000034acd2345678a']


def test_parse_symmetric_key_set_whitespace_order_and_groups():
    ranges, aliases = parse_symmetric_key_set(' DCB001-00F , grp1,  DCA001-1FF,dca000000000000000200 ')
    assert ranges == [AliasRange('dcb', 1, 15), AliasRange('dca', 1, 0x1ff)]
    # 'grp1' might be a key group id: it is indistinguishable from a plain alias.
    assert aliases == ['grp1', 'dca000000000000000200']


def test_parse_symmetric_key_set_does_not_judge_overlaps():
    ranges, _aliases = parse_symmetric_key_set('DCA001-010,DCA005-006')
    assert len(ranges) == 2
    assert 'overlap' in _error(expand, ranges)


@pytest.mark.parametrize('value', ['', '   '])
def test_parse_symmetric_key_set_empty(value):
    assert parse_symmetric_key_set(value) == ([], [])


@pytest.mark.parametrize('value, fragment', [
    ('DCA001-1FF,,tape1', 'empty item at position 2'),
    ('DCA001-1FF,', 'empty item at position 2'),
    (',tape1', 'empty item at position 1'),
    ('DCA001-1FF,\ntape1', 'spans several lines'),
    ('tape-one-x', "item 'tape-one-x' contains '-', so it must be a key alias range"),
    ('DCA001-1FF,DCA1FF-001', "item 'DCA1FF-001' contains '-'"),
    ('DCA010000000000000000-010000000000000001', "must start with '00'"),
    ('tape1,averyverylongalias', "item 'averyverylongalias' is not a valid alias"),
    ('tape 1', "item 'tape 1' is not a valid alias"),
    (None, 'must be a string'),
])
def test_parse_symmetric_key_set_rejects(value, fragment):
    assert fragment in _error(parse_symmetric_key_set, value)


def test_format_symmetric_key_set():
    value = format_symmetric_key_set([{'prefix': 'dca', 'first': 1, 'count': 511}, 'THZ001-FF'],
                                     ['KMA0238ab34', 'kmb0000034acd2345678a'])
    assert value == 'DCA001-1FF,THZ001-0FF,kma0238ab34,kmb0000034acd2345678a'
    assert parse_symmetric_key_set(value) == (
        [AliasRange('dca', 1, 511), AliasRange('thz', 1, 255)], ['kma0238ab34', 'kmb0000034acd2345678a'])
    assert format_symmetric_key_set([]) == ''
    assert format_symmetric_key_set([], ['tape1']) == 'tape1'


@pytest.mark.parametrize('ranges, aliases, fragment', [
    (['DCA001-010', 'DCA005-006'], (), 'overlap'),
    (['DCA001-010'], ['tape-1'], "'tape-1' cannot be listed in symmetricKeySet"),
    (['DCA001-010'], ['tape1', 'TAPE1'], "'tape1' is listed twice"),
    (['DCA001-010'], ['dca000000000000000005'], "'dca000000000000000005' is already part of the range DCA001-010"),
    (['DCA001-010'], ['a,b'], "'a,b' contains a character"),
    (['DCA001-010'], 'tape1', 'must be given as a list'),
])
def test_format_symmetric_key_set_rejects(ranges, aliases, fragment):
    assert fragment in _error(format_symmetric_key_set, ranges, aliases)
