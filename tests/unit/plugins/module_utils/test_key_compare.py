# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_keystore.same_key(): the one answer to "same key under the same alias?" for compare, sync and restore."""
from __future__ import annotations

import os

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _jceks, _keystore
from ansible_collections.tapecrypt.ekm.plugins.module_utils._keystore import (
    CANNOT_COMPARE, DIFFERENT, NEEDS_FINGERPRINTS, SAME, KeySide, same_key)
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.test_sync import Pair, alias, snapshot

PW = 'changeit-store'


def side(entry, password=PW):
    return KeySide.of_entry(entry, password)


@pytest.mark.parametrize('first_dialect', ['sunjce', 'ibm'])
@pytest.mark.parametrize('second_dialect', ['sunjce', 'ibm'])
def test_same_and_different_keys_in_either_dialect(first_dialect, second_dialect):
    key = os.urandom(32)
    a = _jceks.seal_secret_key('k', key, PW, 1000, dialect=first_dialect)
    b = _jceks.seal_secret_key('k', key, PW, 1000, dialect=second_dialect)
    c = _jceks.seal_secret_key('k', os.urandom(32), PW, 1000, dialect=second_dialect)
    assert same_key(side(a), side(a)) == (SAME, None)
    assert same_key(side(a), side(b)) == (SAME, None)
    assert same_key(side(a), side(c))[0] == DIFFERENT


def test_a_key_that_cannot_be_decrypted_is_not_called_different():
    key = os.urandom(32)
    a = _jceks.seal_secret_key('k', key, PW, 1000, dialect='ibm')
    b = _jceks.seal_secret_key('k', key, 'other-key-pass', 1000, dialect='ibm')
    verdict, reason = same_key(side(a), side(b))
    assert verdict == CANNOT_COMPARE and 'could not be decrypted' in reason
    assert same_key(side(a), side(b, 'other-key-pass')) == (SAME, None)
    assert same_key(side(a), KeySide.of_entry(b))[0] == CANNOT_COMPARE


def test_kinds_and_values():
    secret = KeySide('secret', 'aa')
    assert same_key(secret, KeySide('secret', 'aa')) == (SAME, None)
    assert same_key(secret, KeySide('trusted', 'bb'))[0] == DIFFERENT
    assert same_key(KeySide('trusted', 'aa'), KeySide('trusted', 'bb'))[0] == CANNOT_COMPARE
    assert same_key(secret, KeySide('secret', 'bb')) == (NEEDS_FINGERPRINTS, None)
    assert same_key(KeySide('secret', 'aa', 'f1'), KeySide('secret', 'bb', 'f1')) == (SAME, None)
    assert same_key(KeySide('secret', 'aa', 'f1'), KeySide('secret', 'bb', 'f2'))[0] == DIFFERENT


def test_compare_names_what_it_cannot_compare():
    key = os.urandom(32)
    primary, redundant = _jceks.new_keystore(), _jceks.new_keystore()
    primary.add(_jceks.seal_secret_key('k1', key, PW, 20, dialect='ibm'))
    redundant.add(_jceks.seal_secret_key('k1', key, 'another-pw', 20, dialect='ibm'))
    with pytest.raises(_keystore.KeystoreError, match='k1'):
        _keystore.compare(primary, redundant, PW, PW)
    assert _keystore.compare(primary, redundant, PW, 'another-pw') == ([], [])


def make_ibm(path, numbers, password=PW):
    """An IBM-dialect keystore with fresh keys, as one EKM installed on its own would have."""
    ks = _jceks.new_keystore()
    for entry in _jceks.seal_secret_keys([(alias(n), _jceks.generate_aes_key()) for n in numbers], password, dialect='ibm'):
        ks.add(entry)
    with open(path, 'wb') as f:
        f.write(_jceks.dump(ks, password))


def test_sync_finds_the_conflict_between_two_independent_ibm_keystores(tmp_path):
    pair = Pair(tmp_path)
    make_ibm(pair.pk(), range(1, 11))
    make_ibm(pair.rk(), range(1, 11))  # the same aliases, its own keys
    before = snapshot(pair.r)
    err = pair.fails()
    assert 'different keys' in str(err) and 'DCA001-00A' in str(err)
    assert err.result['conflicts'][0]['aliases'] == ['DCA001-00A']
    assert snapshot(pair.r) == before and pair.transfers == []


def test_sync_copies_an_ibm_keystore_whose_keys_match(tmp_path):
    pair = Pair(tmp_path)
    make_ibm(pair.pk(), range(1, 4))
    with open(pair.pk(), 'rb') as f:
        primary = _jceks.load(f.read(), PW)
    resealed = _jceks.new_keystore()
    for entry in primary.entries[:2]:
        resealed.add(_jceks.seal_secret_key(entry.alias, _jceks.unseal(entry, PW)[1], PW, dialect='ibm'))
    with open(pair.rk(), 'wb') as f:
        f.write(_jceks.dump(resealed, PW))
    res = pair.sync()
    assert res['conflicts'] == [] and res['aliases_added'] == [alias(3)]
    with open(pair.rk(), 'rb') as f, open(pair.pk(), 'rb') as g:
        assert f.read() == g.read()


def test_restore_says_cannot_compare_rather_than_different(tmp_path):
    home = tmp_path / 'ekm'
    home.mkdir()
    dest = tmp_path / 'backup'
    dest.mkdir()
    path = str(home / 'EKMKeys.jck')
    key = os.urandom(32)
    ks = _jceks.new_keystore()
    ks.add(_jceks.seal_secret_key('dca000000000000000001', key, PW, dialect='ibm'))
    with open(path, 'wb') as f:
        f.write(_jceks.dump(ks, PW))
    _backup.backup({'keystore': path}, PW, str(dest), 'dc1', 'ekm1')
    set_path = _backup.find_set(str(dest), 'dc1', 'ekm1')
    # The same key, now sealed with a key password the restore is not given.
    current = _jceks.new_keystore()
    current.add(_jceks.seal_secret_key('dca000000000000000001', key, 'keytool-keypass', dialect='ibm'))
    with open(path, 'wb') as f:
        f.write(_jceks.dump(current, PW))
    plan = _backup.plan_restore(set_path, {'keystore': path}, PW)
    assert plan.aliases_replaced == [] and plan.aliases_lost == []
    assert 'cannot be compared' in plan.refusal and 'dca000000000000000001' in plan.refusal
    assert 'holds different keys' not in plan.refusal and 'is unknown' in plan.refusal
