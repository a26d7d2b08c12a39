# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import copy

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.filter.seed import FilterModule, symmetric_key_set, validate_seed
from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import EXPAND_LIMIT

PASSWORD = 'Secret-Tape-42'

GOOD = {
    'site': 'dc1',
    'keystore_password': PASSWORD,
    'key_ranges': [{'prefix': 'DCA', 'first': 1, 'count': 512}],
    'symmetric_key_set': None,
    'tcp_port': 3801,
    'ssl_port': 443,
    'accept_unknown_drives': False,
    'settings': {},
    'backup': {'dest': '/srv/ekm-backup', 'keep': 30},
}


def seed(**changes):
    result = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is KeyError:
            del result[key]
        else:
            result[key] = value
    return result


def one_error(errors, *fragments):
    assert len(errors) == 1, errors
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_filters_are_registered():
    filters = FilterModule().filters()
    assert filters['validate_seed'] is validate_seed
    assert filters['symmetric_key_set'] is symmetric_key_set


def test_good_seed_has_no_error():
    assert validate_seed(GOOD) == []
    assert validate_seed(GOOD, ['ekm1']) == []


def test_minimal_seed_uses_defaults():
    minimal = {'site': 'dc1', 'keystore_password': PASSWORD, 'key_ranges': [{'prefix': 'DCA', 'first': 1, 'last': '0x1ff'}]}
    assert validate_seed(minimal) == []


@pytest.mark.parametrize('value', [None, [], 'dc1', 42])
def test_seed_must_be_a_dict(value):
    one_error(validate_seed(value), 'ekm_seed must be a dictionary')


def test_unknown_key_is_named():
    one_error(validate_seed(seed(key_range=[], tcp=1)), 'unknown key(s) key_range, tcp', 'ekm_seed.settings')


@pytest.mark.parametrize('value', [KeyError, None, ''])
def test_site_must_be_set(value):
    one_error(validate_seed(seed(site=value)), 'ekm_seed.site is not set')


@pytest.mark.parametrize('value', ['dc 1', '../x', '.hidden', 'a/b', 7, 'x' * 65])
def test_site_must_be_a_folder_name(value):
    one_error(validate_seed(seed(site=value)), 'ekm_seed.site', 'not a usable label')


@pytest.mark.parametrize('value', ['dc1', 'DC-1', 'site_2.east', '1'])
def test_site_accepts_labels(value):
    assert validate_seed(seed(site=value)) == []


@pytest.mark.parametrize('value', [KeyError, None, ''])
def test_password_must_be_set(value):
    one_error(validate_seed(seed(keystore_password=value)), 'keystore_password is not set')


def test_password_too_short_is_refused_without_echo():
    message = one_error(validate_seed(seed(keystore_password='abc12')), 'has only 5 character(s)', 'at least 6')
    assert 'abc12' not in message


def test_password_of_six_characters_is_enough():
    assert validate_seed(seed(keystore_password='abc123')) == []


def test_password_outside_printable_ascii_is_refused_without_echo():
    for password in ('pässwort-1', 'tab\there-1', 'line\nbreak'):
        message = one_error(validate_seed(seed(keystore_password=password)), 'printable ASCII')
        assert password not in message


def test_password_with_space_and_symbols_is_printable():
    assert validate_seed(seed(keystore_password=' a b~!#=:\\')) == []


def test_password_must_be_a_string():
    message = one_error(validate_seed(seed(keystore_password=12345678)), 'must be a string', 'int')
    assert '12345678' not in message


@pytest.mark.parametrize('value', [KeyError, None, []])
def test_key_ranges_must_not_be_empty(value):
    one_error(validate_seed(seed(key_ranges=value)), 'ekm_seed.key_ranges is empty')


def test_key_ranges_must_be_a_list():
    one_error(validate_seed(seed(key_ranges={'prefix': 'DCA', 'first': 1, 'count': 2})), 'must be a list')


@pytest.mark.parametrize('spec, fragment', [
    ({'prefix': 'DC', 'first': 1, 'count': 2}, 'not 3 letters'),
    ({'prefix': 'DC1', 'first': 1, 'count': 2}, 'not 3 letters'),
    ({'prefix': 'DCAB', 'first': 1, 'count': 2}, 'not 3 letters'),
    ({'prefix': 'DCA', 'count': 2}, 'first is missing'),
    ({'prefix': 'DCA', 'first': 1}, 'either last or count'),
    ({'prefix': 'DCA', 'first': 5, 'last': 4}, 'below first'),
    ({'prefix': 'DCA', 'first': 1, 'count': 0}, 'at least 1'),
    ({'prefix': 'DCA', 'first': 1, 'count': 2, 'size': 3}, 'unknown key'),
    ({'prefix': 'DCA', 'first': '1FF', 'last': 1}, 'not an integer'),
    ('DCA1FF-001', 'below the first counter'),
    ('DCA001', 'not in EKM range syntax'),
    (None, 'write each range as a dictionary'),
    (5, 'or as a string'),
])
def test_malformed_range_names_its_index(spec, fragment):
    ranges = [{'prefix': 'DCB', 'first': 1, 'count': 2}, spec]
    one_error(validate_seed(seed(key_ranges=ranges)), 'ekm_seed.key_ranges[1]', fragment)


def test_each_malformed_range_is_reported():
    errors = validate_seed(seed(key_ranges=[{'prefix': 'D1', 'first': 1, 'count': 1}, {'prefix': 'DCA', 'first': 1}]))
    assert [e.split(':', maxsplit=1)[0] for e in errors] == ['ekm_seed.key_ranges[0]', 'ekm_seed.key_ranges[1]']


def test_overlapping_ranges_are_refused():
    ranges = [{'prefix': 'DCA', 'first': 1, 'count': 256}, {'prefix': 'dca', 'first': 0x100, 'last': 0x1ff}]
    one_error(validate_seed(seed(key_ranges=ranges)), 'overlap', 'dca000000000000000100')


def test_adjacent_ranges_and_other_prefixes_do_not_overlap():
    ranges = [{'prefix': 'DCA', 'first': 1, 'last': 0xff}, {'prefix': 'DCA', 'first': '0x100', 'last': '0x1ff'},
              {'prefix': 'DCB', 'first': 1, 'count': 255}]
    assert validate_seed(seed(key_ranges=ranges)) == []


def test_string_ranges_in_ekm_syntax_are_accepted():
    ranges = ['DCA001-1FF', {'prefix': 'DCA', 'first': 0x200, 'count': 16}, 'dcb000000000000000001-000000000000000010']
    assert validate_seed(seed(key_ranges=ranges, symmetric_key_set='DCA001-20F,DCB001-010')) == []
    assert symmetric_key_set(seed(key_ranges=ranges)) == 'DCA001-1FF,DCA200-20F,DCB001-010'


def test_string_ranges_are_checked_like_dictionaries():
    one_error(validate_seed(seed(key_ranges=['DCA001-1FF', {'prefix': 'DCA', 'first': 0x100, 'count': 1}])),
              'overlap', 'dca000000000000000100')
    one_error(validate_seed(seed(key_ranges=['DCA001-1FF'], symmetric_key_set='DCA001-200')), 'reaches beyond')


def test_absurd_key_count_is_refused():
    one_error(validate_seed(seed(key_ranges=[{'prefix': 'DCA', 'first': 0, 'last': '0xffffffff'}])), 'typo')


@pytest.mark.parametrize('value', ['DCA001-1FF', 'DCA010-020,dca000000000000000100', ['DCA001-0FF', 'DCA100-200'],
                                   ' DCA001-200 '])
def test_symmetric_key_set_within_key_ranges(value):
    assert validate_seed(seed(symmetric_key_set=value)) == []


def test_symmetric_key_set_may_span_adjacent_ranges():
    ranges = [{'prefix': 'DCA', 'first': 1, 'last': 0xff}, {'prefix': 'DCA', 'first': 0x100, 'count': 256}]
    assert validate_seed(seed(key_ranges=ranges, symmetric_key_set='DCA080-180')) == []


@pytest.mark.parametrize('value', ['DCA001-201', 'DCB001-002', 'DCA000-001'])
def test_symmetric_key_set_range_beyond_key_ranges(value):
    one_error(validate_seed(seed(symmetric_key_set=value)), 'symmetric_key_set', 'reaches beyond', 'DCA001-200')


def test_symmetric_key_set_range_across_a_gap():
    ranges = [{'prefix': 'DCA', 'first': 1, 'last': 0x10}, {'prefix': 'DCA', 'first': 0x20, 'last': 0x30}]
    one_error(validate_seed(seed(key_ranges=ranges, symmetric_key_set='DCA001-030')), 'reaches beyond')


@pytest.mark.parametrize('value', ['dca000000000000000201', 'tape1'])
def test_symmetric_key_set_alias_outside_key_ranges(value):
    one_error(validate_seed(seed(symmetric_key_set=value)), 'symmetric_key_set', repr(value), 'not an alias')


@pytest.mark.parametrize('value', ['', 'DCA001-1FF,,DCA2', 'DCA1FF-001', 'abcdefghijklmnop', 5, ['DCA001-002', 3]])
def test_symmetric_key_set_malformed(value):
    one_error(validate_seed(seed(symmetric_key_set=value)), 'ekm_seed.symmetric_key_set:')


def test_symmetric_key_set_not_compared_when_ranges_are_broken():
    errors = validate_seed(seed(key_ranges=[{'prefix': 'DC', 'first': 1, 'count': 1}], symmetric_key_set='XYZ001-002'))
    one_error(errors, 'key_ranges[0]')


@pytest.mark.parametrize('name', ['tcp_port', 'ssl_port'])
@pytest.mark.parametrize('value', [0, 65536, -1, 'http', True, 80.5])
def test_port_out_of_range(name, value):
    one_error(validate_seed(seed(**{name: value})), 'ekm_seed.%s' % name, 'from 1 to 65535')


def test_ports_as_digit_strings_and_defaults():
    assert validate_seed(seed(tcp_port='3801', ssl_port=None)) == []
    assert validate_seed(seed(tcp_port=KeyError, ssl_port=KeyError)) == []


def test_ports_must_differ():
    one_error(validate_seed(seed(tcp_port=3801, ssl_port='3801')), 'both 3801', 'distinct')


def test_default_ssl_port_clashes_with_tcp_port():
    one_error(validate_seed(seed(tcp_port=443, ssl_port=KeyError)), 'both 443')


@pytest.mark.parametrize('value', [True, False, 'yes', 'false', None])
def test_accept_unknown_drives_booleans(value):
    assert validate_seed(seed(accept_unknown_drives=value)) == []


@pytest.mark.parametrize('value', ['maybe', 2, [True]])
def test_accept_unknown_drives_not_boolean(value):
    one_error(validate_seed(seed(accept_unknown_drives=value)), 'accept_unknown_drives', 'not a boolean')


def test_settings_accept_scalars():
    settings = {'Audit.handler.file.size': 2000, 'fips': 'off', 'Audit.handler.file.multithreads': True,
                'TransportListener.tcp.timeout': '10.50'}
    assert validate_seed(seed(settings=settings)) == []


def test_settings_float_must_be_quoted():
    one_error(validate_seed(seed(settings={'x.y': 1.1})), "ekm_seed.settings['x.y']", 'quoted string')


def test_settings_must_be_a_dict():
    one_error(validate_seed(seed(settings=['fips=off'])), 'ekm_seed.settings must be a dictionary')


@pytest.mark.parametrize('key', ['has space', 'a=b', 'a:b', '', '#x', 'back\\slash', 1])
def test_settings_key_must_be_a_property_name(key):
    one_error(validate_seed(seed(settings={key: 'x'})), 'not a usable property name')


@pytest.mark.parametrize('value', [None, ['a'], {'a': 1}])
def test_settings_value_must_be_scalar(value):
    one_error(validate_seed(seed(settings={'fips': value})), "ekm_seed.settings['fips']", 'state=absent')


def test_backup_may_be_left_out():
    assert validate_seed(seed(backup=KeyError)) == []
    assert validate_seed(seed(backup={'dest': '/mnt/backup'})) == []


@pytest.mark.parametrize('backup, fragment', [
    ('/srv/backup', 'must be a dictionary'),
    ({'dest': 'relative/dir', 'keep': 3}, 'absolute path'),
    ({'dest': '/srv/b', 'keep': 0}, 'at least 1'),
    ({'dest': '/srv/b', 'keep': 'many'}, 'at least 1'),
    ({'dest': '/srv/b', 'kept': 3}, 'unknown key(s) kept'),
])
def test_backup_mistakes(backup, fragment):
    one_error(validate_seed(seed(backup=backup)), 'ekm_seed.backup', fragment)


def test_exactly_one_primary_host():
    one_error(validate_seed(GOOD, []), 'ekm_primary has no host')
    one_error(validate_seed(GOOD, ['ekm1', 'ekm2']), 'has 2 hosts (ekm1, ekm2)', 'ekm_redundant')
    one_error(validate_seed(GOOD, 'ekm1'), 'list of host names')


def test_primary_group_not_checked_when_not_given():
    assert validate_seed(GOOD, None) == []


def test_several_mistakes_are_all_reported():
    errors = validate_seed(seed(site='', keystore_password='x', tcp_port=0, settings=[]), ['a', 'b'])
    assert len(errors) == 5, errors


def test_symmetric_key_set_from_seed_ranges():
    assert symmetric_key_set(GOOD) == 'DCA001-200'
    ranges = [{'prefix': 'DCB', 'first': 0x100, 'count': 0x100}, {'prefix': 'DCA', 'first': 1, 'count': 1}]
    assert symmetric_key_set(seed(key_ranges=ranges)) == 'DCB100-1FF,DCA001-001'


def test_symmetric_key_set_from_ranges_directly():
    assert symmetric_key_set([{'prefix': 'dca', 'first': 1, 'last': 16}]) == 'DCA001-010'
    assert symmetric_key_set({'prefix': 'dca', 'first': 1, 'last': 16}) == 'DCA001-010'
    assert symmetric_key_set('dca001-1ff') == 'DCA001-1FF'


def test_symmetric_key_set_explicit_value_is_kept():
    assert symmetric_key_set(seed(symmetric_key_set=' DCA001-0FF ')) == 'DCA001-0FF'
    assert symmetric_key_set(seed(symmetric_key_set=['DCA001-0FF', 'dca000000000000000100'])) == \
        'DCA001-0FF,dca000000000000000100'


@pytest.mark.parametrize('value', [
    seed(key_ranges=[]),
    seed(symmetric_key_set=''),
    seed(symmetric_key_set='DCA001-0FF,,x'),
    seed(key_ranges=[{'prefix': 'DCA', 'first': 1, 'count': 9}, {'prefix': 'DCA', 'first': 2, 'count': 1}]),
    [],
    42,
    None,
])
def test_symmetric_key_set_refuses_bad_input(value):
    with pytest.raises(AnsibleFilterError, match='symmetric_key_set'):
        symmetric_key_set(value)


def test_the_same_range_written_twice_is_one_range():
    # Issue 14 (regression): last: 200 and count: 200 were refused as a range overlapping itself.
    ranges = [{'prefix': 'DCA', 'first': 1, 'last': 200}, {'prefix': 'DCA', 'first': 1, 'count': 200}, 'DCA001-0C8']
    assert validate_seed(seed(key_ranges=ranges, symmetric_key_set='DCA001-0C8')) == []
    assert symmetric_key_set(seed(key_ranges=ranges)) == 'DCA001-0C8'
    # A range that only overlaps is still refused, also beside an equal pair.
    one_error(validate_seed(seed(key_ranges=ranges + [{'prefix': 'DCA', 'first': 200, 'count': 2}])),
              'overlap', 'dca0000000000000000c8')


def test_equal_ranges_count_once_towards_the_key_limit():
    half = {'prefix': 'DCA', 'first': 1, 'count': EXPAND_LIMIT // 2 + 1}
    assert validate_seed(seed(key_ranges=[half, dict(half)], symmetric_key_set=None)) == []
