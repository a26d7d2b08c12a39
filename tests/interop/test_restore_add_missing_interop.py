# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tapecrypt.ekm.restore with method add_missing against the real JDK: keys added from a backup set to a keystore
that keytool made (with a key pair) are read by Java's KeyStore.getInstance("JCEKS") with the set's fingerprints,
and keytool's own entries stay byte for byte."""
from __future__ import annotations

import datetime

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _jceks, _keystore
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import restore as restore_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

PW = 'interop-promote-pass'


def entries(path):
    with open(path, 'rb') as f:
        return {e.alias: bytes(e.body) for e in _jceks.load(f.read(), PW).entries}


def test_keys_added_to_a_keytool_keystore_are_read_by_java(tmp_path, java_keycheck, keytool):
    redundant = tmp_path / 'ekm2.jck'
    keytool('-genkeypair', '-alias', 'server', '-keyalg', 'RSA', '-keysize', '2048', '-dname', 'CN=ekm',
            '-storetype', 'JCEKS', '-keystore', redundant, storepass=PW, keypass=PW)
    keytool('-genseckey', '-alias', 'PRM000000000000000001', '-keyalg', 'AES', '-keysize', '256',
            '-storetype', 'JCEKS', '-keystore', redundant, storepass=PW, keypass=PW)
    # The lost primary: the redundant server's keystore plus three keys, backed up to a verified set.
    primary = tmp_path / 'ekm1' / 'EKMKeys.jck'
    primary.parent.mkdir()
    primary.write_bytes(redundant.read_bytes())
    run_module(keystore_module.main, dict(path=str(primary), password=PW, ranges=['PRM002-004'], iteration_count=1000))
    (tmp_path / 'backup').mkdir()
    when = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.timezone.utc)
    _backup.backup({'keystore': str(primary)}, PW, str(tmp_path / 'backup'), 'dc1', 'ekm1', now=lambda: when)
    before = entries(redundant)

    res = run_module(restore_module.main, dict(method='add_missing', dest=str(tmp_path / 'backup'), site='dc1',
                                               host='ekm2', from_host='ekm1', keystore_path=str(redundant), password=PW))
    assert res['changed'] is True and res['aliases_gained'] == ['PRM002-004']
    after = entries(redundant)
    assert all(after[a] == body for a, body in before.items())
    java = java_keycheck(redundant, PW)
    assert {a: v[0] for a, v in java.items() if v[1] == 'AES'} == {
        e.alias: _keystore.fingerprint(_jceks.unseal(e, PW)[1])
        for e in _jceks.load(primary.read_bytes(), PW).entries if e.kind == 'secret'}
    assert len(java) == 4 and all(v[1:] == ('AES', 256) for v in java.values())
    listed = keytool('-list', '-storetype', 'JCEKS', '-keystore', redundant, storepass=PW).stdout
    assert 'Your keystore contains 5 entries' in listed and 'PrivateKeyEntry' in listed
