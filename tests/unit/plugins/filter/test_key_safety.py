# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The key_safety filter, fed with inventories of real JCEKS keystores taken as keystore_info takes them."""
from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible.errors import AnsibleFilterError

from ansible_collections.tapecrypt.ekm.plugins.filter.key_safety import FilterModule, key_safety
from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore

from ..keystores import alias, write_keystore

PASSWORD = 'Secret-Tape-42'
FILTER_DIR = os.path.dirname(os.path.abspath(__import__(FilterModule.__module__, fromlist=['_']).__file__))


def info(path, entries=False):
    """What tapecrypt.ekm.keystore_info returns for ``path`` (its registered result)."""
    keystore, data = _keystore.read(str(path), PASSWORD)
    if keystore is None:
        return {'changed': False, 'keystore': {'path': str(path), 'exists': False, 'count': 0, 'ranges': [],
                                               'digest': None, 'entries': []}}
    return {'changed': False, 'keystore': _keystore.inventory(keystore, str(path), data, with_entries=entries)}


@pytest.fixture
def site(tmp_path):
    """A primary with DCA001-200, a redundant and a backup set that are byte-identical copies of it."""
    primary = tmp_path / 'primary.jck'
    written = write_keystore(primary, range(1, 0x201), PASSWORD)
    for name in ('ekm2.jck', 'backup.jck'):
        (tmp_path / name).write_bytes(written.data)
    return tmp_path


def add_keys(path, numbers, base=None):
    """Add fresh keys to the keystore at ``path`` (built on the keystore ``base`` when given)."""
    write_keystore(path, numbers, PASSWORD, existing=str(base or path))


def test_filter_name_and_documentation():
    assert sorted(FilterModule().filters()) == ['key_safety']
    with open(os.path.join(FILTER_DIR, 'key_safety.yml'), encoding='utf-8') as f:
        doc = yaml.safe_load(f)
    assert doc['DOCUMENTATION']['name'] == 'key_safety'
    assert set(doc['RETURN']['_value']['contains']) == set(key_safety('DCA001-002', None))


def test_everything_safe_serves_the_value_asked_for_unchanged(site):
    result = key_safety('DCA001-200', info(site / 'primary.jck'), {'ekm2': info(site / 'ekm2.jck')},
                        info(site / 'backup.jck'))
    assert result['serve'] == 'DCA001-200'
    assert result['complete'] is True
    assert result['staged'] == [] and result['held_back'] == []
    assert result['safe'] == ['DCA001-200'] and result['served_count'] == 0x200
    assert result['summary'] == ['served: DCA001-200']


def test_new_keys_not_yet_copied_or_backed_up_are_staged_and_held_back(site):
    add_keys(site / 'primary.jck', range(0x201, 0x301))
    result = key_safety('DCA001-300', info(site / 'primary.jck', True), {'ekm2': info(site / 'ekm2.jck', True)},
                        info(site / 'backup.jck', True))
    assert result['serve'] == 'DCA001-200'
    assert result['complete'] is False
    assert result['staged'] == ['DCA201-300']
    assert result['held_back'] == [{'aliases': ['DCA201-300'],
                                    'why': ['not on ekm2', "not in the primary's newest verified backup set"]}]
    assert result['held_back_count'] == 0x100
    assert 'held back: DCA201-300: not on ekm2; not in the primary\'s newest verified backup set' in result['summary']


def test_copied_but_not_backed_up(site):
    add_keys(site / 'primary.jck', range(0x201, 0x211))
    (site / 'ekm2.jck').write_bytes((site / 'primary.jck').read_bytes())
    result = key_safety('DCA001-210', info(site / 'primary.jck', True), {'ekm2': info(site / 'ekm2.jck')},
                        info(site / 'backup.jck', True))
    assert result['serve'] == 'DCA001-200'
    assert result['held_back'] == [{'aliases': ['DCA201-210'], 'why': ["not in the primary's newest verified backup set"]}]


def test_backed_up_and_copied_is_served(site):
    add_keys(site / 'primary.jck', range(0x201, 0x211))
    for name in ('ekm2.jck', 'backup.jck'):
        (site / name).write_bytes((site / 'primary.jck').read_bytes())
    result = key_safety('DCA001-210', info(site / 'primary.jck'), {'ekm2': info(site / 'ekm2.jck')},
                        info(site / 'backup.jck'))
    assert result['serve'] == 'DCA001-210' and result['complete']


def test_no_verified_backup_set_holds_everything_back(site):
    result = key_safety('DCA001-200', info(site / 'primary.jck'), {'ekm2': info(site / 'ekm2.jck')}, None)
    assert result['serve'] == ''
    assert result['held_back'] == [{'aliases': ['DCA001-200'], 'why': ['no verified backup set of the primary']}]
    assert result['summary'][0] == 'served: no key is proven safe now; symmetricKeySet is left as it is'


def test_a_redundant_without_keystore_or_unreadable(site):
    missing = info(site / 'nothing-here.jck')
    failed = {'failed': True, 'msg': 'Keystore /opt/ekm/keystore/EKMKeys.jck: keystore password was incorrect'}
    result = key_safety('DCA001-200', info(site / 'primary.jck'), {'ekm2': missing, 'ekm3': failed, 'ekm4': None},
                        info(site / 'backup.jck'))
    assert result['serve'] == ''
    why = result['held_back'][0]['why']
    assert why[0] == 'not on ekm2'
    assert why[1].startswith('ekm3 could not be read (Keystore /opt/ekm') and 'password was incorrect' in why[1]
    assert why[2] == 'ekm4 could not be read in this run'
    unreachable = key_safety('DCA001-200', info(site / 'primary.jck'), {'ekm2': {'unreachable': True, 'msg': 'ssh'}},
                             info(site / 'backup.jck'))
    assert unreachable['held_back'][0]['why'] == ['ekm2 could not be read (ssh)']


def test_same_alias_other_bytes_on_a_redundant_is_held_back(site):
    # The redundant holds DCA100 as another key (for example resealed): not byte-identical, so not safe.
    write_keystore(site / 'ekm2.jck', [0x100], PASSWORD)
    other = _jceks.load((site / 'ekm2.jck').read_bytes(), PASSWORD)
    ks = _jceks.load((site / 'primary.jck').read_bytes(), PASSWORD)
    ks.entries = [e for e in ks.entries if e.alias.lower() != alias(0x100)] + other.entries
    (site / 'ekm2.jck').write_bytes(_jceks.dump(ks, PASSWORD))
    result = key_safety('DCA001-200', info(site / 'primary.jck', True), {'ekm2': info(site / 'ekm2.jck', True)},
                        info(site / 'backup.jck'))
    assert result['held_back'] == [{'aliases': [alias(0x100)], 'why': ['other bytes on ekm2']}]
    assert result['serve'] == 'DCA001-0FF,DCA101-200'


def test_ibm_dialect_entries_of_the_same_key_are_not_byte_identical(tmp_path):
    key = _jceks.generate_aes_key()
    for name, dialect in (('primary.jck', _jceks.DIALECT_IBM), ('ekm2.jck', _jceks.DIALECT_SUNJCE)):
        ks = _jceks.new_keystore()
        ks.add(_jceks.seal_secret_key(alias(1), key, PASSWORD, iteration_count=20, dialect=dialect))
        (tmp_path / name).write_bytes(_jceks.dump(ks, PASSWORD))
    (tmp_path / 'backup.jck').write_bytes((tmp_path / 'primary.jck').read_bytes())
    primary = info(tmp_path / 'primary.jck', True)
    assert primary['keystore']['dialect'] == 'ibm'
    same = key_safety(alias(1), primary, {}, info(tmp_path / 'backup.jck'))
    assert same['serve'] == alias(1)
    result = key_safety(alias(1), primary, {'ekm2': info(tmp_path / 'ekm2.jck', True)}, info(tmp_path / 'backup.jck'))
    assert result['held_back'] == [{'aliases': [alias(1)], 'why': ['other bytes on ekm2']}]


def test_asked_aliases_beyond_the_keystore_and_a_seed_of_its_own(site):
    result = key_safety('DCA001-210,pool7', info(site / 'primary.jck'), {'ekm2': info(site / 'ekm2.jck')},
                        info(site / 'backup.jck'))
    assert result['serve'] == 'DCA001-200'
    assert result['held_back'] == [{'aliases': ['DCA201-210', 'pool7'], 'why': ["not in the primary's keystore"]}]
    # A seed that names a subset: the rest of the keystore is staged, nothing is held back.
    subset = key_safety('DCA001-100', info(site / 'primary.jck'), {'ekm2': info(site / 'ekm2.jck')},
                        info(site / 'backup.jck'))
    assert subset['serve'] == 'DCA001-100' and subset['complete']
    assert subset['staged'] == ['DCA101-200']


def test_unreadable_primary_serves_nothing(site):
    result = key_safety('DCA001-200', {'failed': True, 'msg': 'no'}, {'ekm2': info(site / 'ekm2.jck')},
                        info(site / 'backup.jck'))
    assert result['serve'] == '' and result['safe'] == []
    assert result['held_back'] == [{'aliases': ['DCA001-200'], 'why': ["the primary's keystore could not be read"]}]


def test_differing_digests_without_entries_fail_clearly(site):
    add_keys(site / 'primary.jck', [0x201])
    with pytest.raises(AnsibleFilterError, match='ekm2 and the primary differ.*entries: true'):
        key_safety('DCA001-201', info(site / 'primary.jck'), {'ekm2': info(site / 'ekm2.jck')}, info(site / 'backup.jck'))


def test_bad_input_is_refused_without_echoing_it(site):
    with pytest.raises(AnsibleFilterError, match='must be the result of tapecrypt.ekm.keystore_info'):
        key_safety('DCA001-200', 'Secret-Tape-42')
    with pytest.raises(AnsibleFilterError, match='dictionary'):
        key_safety('DCA001-200', info(site / 'primary.jck'), ['ekm2'])
    with pytest.raises(AnsibleFilterError, match='key_safety: .*empty item'):
        key_safety('DCA001-200,,', info(site / 'primary.jck'))


def test_fast_path_at_scale_needs_no_entry_lists(tmp_path):
    """10000 keys on three copies: the summaries alone decide, and they carry no per-entry list."""
    ks = _jceks.new_keystore()
    for n in range(1, 10001):
        ks.add(_jceks.seal_secret_key(alias(n), _jceks.generate_aes_key(), PASSWORD, iteration_count=1))
    (tmp_path / 'primary.jck').write_bytes(_jceks.dump(ks, PASSWORD))
    primary = info(tmp_path / 'primary.jck')
    assert primary['keystore']['entries'] == []
    assert len(json.dumps(primary)) < 1000  # a summary: count, ranges, digest; no 10000 entries
    result = key_safety('DCA0001-2710', primary, {'ekm2': primary, 'ekm3': primary}, primary)
    assert result['serve'] == 'DCA0001-2710' and result['safe_count'] == 10000
