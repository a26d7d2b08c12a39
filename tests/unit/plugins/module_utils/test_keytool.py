# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The batched keytool backend with a stand-in keytool; tests/interop runs the real one."""
from __future__ import annotations

import os

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore, _keytool
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.keytool_standin import FAST, KeytoolStandin, private_tempdir

PW = 'store-pass-1'
KP = 'key-pass-2'


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    return private_tempdir(tmp_path, monkeypatch)


@pytest.fixture
def ks_dir(tmp_path):
    """The keystore's directory: keytool's work files lie beside the keystore, in a private directory."""
    where = tmp_path / 'keystore'
    where.mkdir()
    return where


def aliases(n, prefix='dca'):
    return ['%s%018x' % (prefix, i) for i in range(1, n + 1)]


def existing_store():
    store = _jceks.new_keystore()
    for entry in _jceks.seal_secret_keys([('old1', os.urandom(32)), ('old2', os.urandom(32))], PW, FAST):
        store.add(entry)
    data = _jceks.dump(store, PW)
    return _jceks.load(data, PW), data


@pytest.mark.parametrize('processes, keys, expected', [
    (2, 1000, 2), (2, 20, 1), (4, 40, 2), (64, 10000, _keytool.MAX_JVMS), (1, 1000, 1), (2, 1, 1),
])
def test_jvm_count(processes, keys, expected):
    assert _keytool.jvm_count(processes, keys) == expected


def test_split_is_contiguous_and_even():
    parts = _keytool.split(list(range(11)), 3)
    assert parts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10]]
    assert _keytool.split([1], 4) == [[1]]


def test_batch_adds_every_key_keeps_old_entries_and_cleans_up(private_tmp, ks_dir):
    standin = KeytoolStandin()
    store, data = existing_store()
    old = {e.alias: e.body for e in store.entries}
    wanted = aliases(40)
    new, after, how = _keytool.add_keys(standin.keytool(), str(ks_dir / 'EKMKeys.jck'), store, data, wanted, PW, KP,
                                        processes=2)
    assert how == {'method': 'importkeystore', 'runs': 2}
    reread = _jceks.load(new, PW)
    assert reread.aliases() == ['old1', 'old2'] + wanted and after.aliases() == reread.aliases()
    assert all(reread.get(a).body == body for a, body in old.items())
    assert all(_jceks.unseal(reread.get(a), KP)[0] == 'AES' for a in wanted)
    # Two JVMs, each given half of the range in a private PKCS#12 file, which is gone now.
    assert [n for _m, _d, n in standin.sources] == [20, 20]
    assert all(mode == 0o600 and dirmode == 0o700 for mode, dirmode, _n in standin.sources)
    dest = standin.calls[0][0][standin.calls[0][0].index('-destkeystore') + 1]
    assert os.path.dirname(os.path.dirname(dest)) == str(ks_dir)
    assert os.path.basename(os.path.dirname(dest)).startswith('.tapecrypt-keytool-')
    assert os.listdir(private_tmp) == [] and os.listdir(ks_dir) == []


def test_passwords_travel_in_the_environment_only(ks_dir):
    standin = KeytoolStandin()
    _keytool.add_keys(standin.keytool(), str(ks_dir / 'k.jck'), None, None, aliases(3), PW, KP)
    assert len(standin.calls) == 1
    argv, env = standin.calls[0]
    transfer = env['TAPECRYPT_TP']
    assert len(transfer) >= 40 and transfer not in (PW, KP)
    for secret in (PW, KP, transfer):
        assert all(secret not in word for word in argv)
    assert env['TAPECRYPT_SP'] == PW and env['TAPECRYPT_KP'] == KP and env['LANG'] == 'C'
    assert {'-srcstorepass:env', '-deststorepass:env', '-destkeypass:env'} <= set(argv)


def test_new_keystore_from_nothing(ks_dir):
    new, after, how = _keytool.add_keys(KeytoolStandin().keytool(), str(ks_dir / 'k.jck'), None, None, aliases(5), PW, PW)
    assert how['method'] == 'importkeystore' and after.aliases() == aliases(5)
    assert _jceks.load(new, PW).aliases() == aliases(5)


def test_keytool_without_pkcs12_secret_keys_falls_back_to_one_jvm_per_key(private_tmp, ks_dir):
    standin = KeytoolStandin(pkcs12=False)
    store, data = existing_store()
    wanted = aliases(20)
    keystore_dir = ks_dir
    new, after, how = _keytool.add_keys(standin.keytool(), str(keystore_dir / 'EKMKeys.jck'), store, data, wanted, PW, KP,
                                        processes=2)
    assert how['method'] == 'genseckey' and 'cannot import PKCS#12 secret keys' in how['reason']
    # The per-key JVMs worked on a copy in a marked private directory beside the keystore, removed afterwards.
    genseckey_store = standin.calls[2][0][standin.calls[2][0].index('-keystore') + 1]
    assert os.path.basename(os.path.dirname(genseckey_store)).startswith('.tapecrypt-keytool-')
    assert os.path.dirname(os.path.dirname(genseckey_store)) == str(keystore_dir)
    assert os.listdir(keystore_dir) == []
    ops = [argv[1] for argv, _env in standin.calls]
    # The batch (one JVM for 20 keys), the probe, then one -genseckey per key.
    assert ops == ['-importkeystore', '-importkeystore'] + ['-genseckey'] * 20
    assert how['runs'] == len(ops)
    assert '-srcalias' not in standin.calls[1][0] and 'probe' in standin.calls[1][0][standin.calls[1][0].index('-destkeystore') + 1]
    assert after.aliases() == ['old1', 'old2'] + wanted and _jceks.load(new, PW).aliases() == after.aliases()
    assert os.listdir(private_tmp) == []


def test_failed_batch_with_a_capable_keytool_is_an_error_and_changes_nothing(private_tmp, ks_dir):
    standin = KeytoolStandin(fail_when='part1')
    store, data = existing_store()
    with pytest.raises(_keystore.KeystoreError, match='No space left on device.*Nothing was changed'):
        _keytool.add_keys(standin.keytool(), str(ks_dir / 'EKMKeys.jck'), store, data, aliases(40), PW, KP, processes=2)
    # The probe said PKCS#12 works, so no key was made one by one; the caller's store is untouched.
    assert [argv[1] for argv, _env in standin.calls] == ['-importkeystore'] * 3
    assert store.aliases() == ['old1', 'old2']
    assert os.listdir(private_tmp) == [] and os.listdir(ks_dir) == []


def test_a_keytool_that_drops_entries_is_caught(monkeypatch, ks_dir):
    standin = KeytoolStandin()
    real = standin._import  # pylint: disable=protected-access

    def drop_last(argv, env):
        rc, out = real(argv, env)
        dest = argv[argv.index('-destkeystore') + 1]
        store = _jceks.load(open(dest, 'rb').read(), PW)
        if len(store.entries) > 1:
            store.entries.pop()
            with open(dest, 'wb') as f:
                f.write(_jceks.dump(store, PW))
        return rc, out

    monkeypatch.setattr(standin, '_import', drop_last)
    with pytest.raises(_keystore.KeystoreError, match=r'not imported: dca000000000000000005;.*Nothing was changed'):
        _keytool.add_keys(standin.keytool(), str(ks_dir / 'k.jck'), None, None, aliases(5), PW, PW)
