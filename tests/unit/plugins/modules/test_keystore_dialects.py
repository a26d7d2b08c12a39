# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The keystore and keystore_info modules on keystores of both dialects."""
from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore_info as info_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.test_jceks_ibm import ibm_entry, ibm_store
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

PW = 'ekm-store-pass'
KP = 'ekm-key-pass'


def args(path, **kw):
    base = dict(path=str(path), password=PW, ranges=[{'prefix': 'DCA', 'first': 1, 'count': 3}])
    base.update(kw)
    return base


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load(path, password=PW):
    return _jceks.load(path.read_bytes(), password)


@pytest.fixture
def ibm_written(tmp_path):
    """A keystore as IBM's keytool leaves it: one AES-256 key, 20 iterations, its own key password."""
    path = tmp_path / 'EKMKeys.jck'
    key = os.urandom(32)
    path.write_bytes(ibm_store([ibm_entry('ekmkey01', key, KP, bytes.fromhex('0102030405060708'))], PW))
    return path, key


def test_keys_added_to_an_ibm_keystore_are_ibm_and_old_bytes_stay(ibm_written):
    path, old_key = ibm_written
    old_body = load(path).get('ekmkey01').body
    res = run_module(keystore_module.main, args(path, key_password=KP))
    assert res['changed'] is True and res['dialect'] == 'ibm' and res['iteration_count'] == 20
    ks = load(path)
    assert ks.get('ekmkey01').body == old_body
    assert [e.dialect for e in ks.entries] == ['ibm'] * 4
    assert {e.sealed().iteration_count for e in ks.entries} == {20}
    info = run_module(info_module.main, dict(path=str(path), password=PW, key_password=KP, fingerprints=True))['keystore']
    assert info['dialect'] == 'ibm'
    rows = {row['alias']: row for row in info['entries']}
    assert rows['ekmkey01']['fingerprint'] == _keystore.fingerprint(old_key)
    assert all(len(row['fingerprint']) == 16 and row['dialect'] == 'ibm' for row in rows.values())
    assert [rows[a]['size'] for a in ks.aliases()] == [256] * 4
    again = run_module(keystore_module.main, args(path, key_password=KP))
    assert again['changed'] is False


def test_the_existing_iteration_count_is_kept(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    path.write_bytes(ibm_store([ibm_entry('k1', os.urandom(32), PW, bytes.fromhex('0102030405060708'), iterations=50)], PW))
    res = run_module(keystore_module.main, args(path))
    assert res['iteration_count'] == 50
    assert {e.sealed().iteration_count for e in load(path).entries} == {50}


def test_writing_the_other_dialect_is_refused_and_nothing_changes(ibm_written, tmp_path):
    path, dummy = ibm_written
    before = sha(path)
    res = run_module(keystore_module.main, args(path, key_password=KP, dialect='sunjce'), expect_fail=True)
    assert 'IBM dialect' in res['msg'] and 'ekmkey01' in res['msg'] and 'nothing was changed' in res['msg']
    assert res.get('changed') is not True and sha(path) == before
    sunjce = tmp_path / 'sunjce.jck'
    run_module(keystore_module.main, args(sunjce, iteration_count=1000))
    before = sha(sunjce)
    res = run_module(keystore_module.main, args(sunjce, dialect='ibm', ranges=['DCA004-005']), expect_fail=True)
    assert 'SunJCE dialect' in res['msg'] and 'DCA001-003' in res['msg']
    assert sha(sunjce) == before


def test_a_keystore_that_mixes_dialects_is_refused(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    mixed = _jceks.new_keystore()
    mixed.entries.append(_jceks.seal_secret_key('a', os.urandom(32), PW, 1000))
    mixed.entries.append(_jceks.seal_secret_key('b', os.urandom(32), PW, dialect='ibm'))
    path.write_bytes(_jceks.dump(mixed, PW))
    before = sha(path)
    res = run_module(keystore_module.main, args(path), expect_fail=True)
    assert 'both dialects' in res['msg'] and sha(path) == before
    info = run_module(info_module.main, dict(path=str(path), password=PW, fingerprints=True))['keystore']
    assert info['dialect'] == 'mixed' and all('fingerprint' in row for row in info['entries'])


def test_a_new_keystore_is_sunjce_unless_told(tmp_path):
    auto = tmp_path / 'auto.jck'
    res = run_module(keystore_module.main, args(auto, iteration_count=1000))
    assert res['dialect'] == 'sunjce' and load(auto).dialect() == 'sunjce'
    ibm = tmp_path / 'ibm.jck'
    res = run_module(keystore_module.main, args(ibm, dialect='ibm'))
    assert res['dialect'] == 'ibm' and res['iteration_count'] == 20
    assert load(ibm).dialect() == 'ibm'
    # auto follows the file from now on
    res = run_module(keystore_module.main, args(ibm, ranges=['DCA004-005']))
    assert res['dialect'] == 'ibm' and load(ibm).dialect() == 'ibm' and len(load(ibm)) == 5


def test_check_mode_reports_the_dialect_and_writes_nothing(ibm_written):
    path, dummy = ibm_written
    before = sha(path)
    res = run_module(keystore_module.main, args(path, key_password=KP), check_mode=True)
    assert res['changed'] is True and res['dialect'] == 'ibm' and res['iteration_count'] == 20
    assert sha(path) == before


def test_key_password_other_than_password(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    run_module(keystore_module.main, args(path, dialect='ibm', key_password=KP))
    ks = load(path)
    assert all(_jceks.unseal(e, KP)[0] == 'AES' for e in ks.entries)
    with pytest.raises(_jceks.JceksUnsealError):
        _jceks.unseal(ks.entries[0], PW)
    res = run_module(info_module.main, dict(path=str(path), password=PW, fingerprints=True), expect_fail=True)
    assert 'could not be decrypted' in res['msg']
    ok = run_module(info_module.main, dict(path=str(path), password=PW, key_password=KP, fingerprints=True))
    assert len({row['fingerprint'] for row in ok['keystore']['entries']}) == 3


def test_without_fingerprints_ibm_keys_are_recognised_as_aes_256(ibm_written):
    path, dummy = ibm_written
    info = run_module(info_module.main, dict(path=str(path), password=PW))['keystore']
    assert info['entries'][0]['algorithm'] == 'AES' and info['entries'][0]['size'] == 256
    assert 'fingerprint' not in info['entries'][0]
