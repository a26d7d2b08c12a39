# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The batched keytool backend against the real JDK: our PKCS#12 files, keytool -importkeystore, the fallback."""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore, _pkcs12
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.keytool_standin import private_tempdir
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

PW = 'interop-store-pass'


@pytest.fixture(autouse=True)
def private_tmp(tmp_path, monkeypatch):
    return private_tempdir(tmp_path, monkeypatch)


def our_fingerprints(path, key_password=PW):
    store = _jceks.load(path.read_bytes(), PW)
    return {e.alias: _keystore.fingerprint(_jceks.unseal(e, key_password)[1]) for e in store.entries if e.kind == 'secret'}


def wrapper(tmp_path, jdk, body):
    """A keytool that logs its arguments (and the modes of the PKCS#12 file it is given), then runs ``body``."""
    log = tmp_path / 'keytool.log'
    script = tmp_path / 'keytool'
    script.write_text('#!/bin/sh\nprintf "%%s\\n" "$*" >> "%s"\nprev=\nfor a in "$@"; do\n'
                      '  [ "$prev" = -srckeystore ] && stat -c "mode %%a %%n" "$a" "$(dirname "$a")" >> "%s"\n'
                      '  prev=$a\ndone\n%s\n' % (log, log, body.replace('REAL', jdk['keytool'])))
    script.chmod(0o755)
    return str(script), log


def test_java_reads_our_pkcs12_secret_keys(tmp_path, java_keycheck, keytool):
    items = [('p12%018x' % i, os.urandom(32)) for i in range(1, 6)] + [('Mixed.Case', os.urandom(32))]
    path = tmp_path / 'keys.p12'
    path.write_bytes(_pkcs12.secret_key_store(items, 'transfer-pass'))
    java = java_keycheck(path, 'transfer-pass', storetype='PKCS12')
    assert java == {a.lower(): (_keystore.fingerprint(k), 'AES', 256) for a, k in items}
    listed = keytool('-list', '-storetype', 'PKCS12', '-keystore', path, storepass='transfer-pass').stdout
    assert listed.count('SecretKeyEntry') == 6


def test_batches_into_a_keytool_made_keystore(tmp_path, jdk, java_keycheck, keytool, private_tmp):
    path = tmp_path / 'EKMKeys.jck'
    keytool('-genkeypair', '-alias', 'server', '-keyalg', 'RSA', '-keysize', '2048', '-dname', 'CN=ekm',
            '-storetype', 'JCEKS', '-keystore', path, storepass=PW, keypass=PW)
    keytool('-genseckey', '-alias', 'oldkey', '-keyalg', 'AES', '-keysize', '256', '-storetype', 'JCEKS',
            '-keystore', path, storepass=PW, keypass=PW)
    before = {e.alias: e.body for e in _jceks.load(path.read_bytes(), PW).entries}
    script, log = wrapper(tmp_path, jdk, 'exec REAL "$@"')
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, backend='keytool', keytool_path=script,
                                                ranges=['KBA001-022'], processes=2))
    assert res['created'] == ['KBA001-022'] and res['total'] == 36
    assert res['keytool'] == {'method': 'importkeystore', 'runs': 2}
    after = _jceks.load(path.read_bytes(), PW)
    assert all(after.get(alias).body == body for alias, body in before.items())
    # Java decrypts every key, and its fingerprints are ours.
    java = java_keycheck(path, PW)
    assert len(java) == 35 and {a: v[0] for a, v in java.items()} == our_fingerprints(path)
    assert all(v[1:] == ('AES', 256) for v in java.values())
    assert 'Your keystore contains 36 entries' in keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass=PW).stdout
    # Two JVMs, each with a private PKCS#12 file; no password on any command line; nothing left behind.
    text = log.read_text()
    assert text.count('-importkeystore') == 2 and PW not in text
    modes = [line.split()[1] for line in text.splitlines() if line.startswith('mode ')]
    assert modes == ['600', '700', '600', '700']
    assert os.listdir(private_tmp) == []
    assert [n for n in os.listdir(tmp_path) if n.startswith('.tapecrypt-')] == []  # keytool's work files went too
    again = run_module(keystore_module.main, dict(path=str(path), password=PW, backend='keytool', ranges=['KBA001-022']))
    assert again['changed'] is False


def test_separate_key_password(tmp_path, java_keycheck):
    path = tmp_path / 'EKMKeys.jck'
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, key_password='other-key-pass', backend='keytool',
                                                ranges=['KBB001-003']))
    assert res['keytool']['method'] == 'importkeystore'
    java = java_keycheck(path, PW, keypass='other-key-pass')
    assert {a: v[0] for a, v in java.items()} == our_fingerprints(path, 'other-key-pass')


def test_falls_back_to_one_jvm_per_key_when_keytool_cannot_import_pkcs12_secret_keys(tmp_path, jdk, java_keycheck,
                                                                                     private_tmp):
    path = tmp_path / 'EKMKeys.jck'
    old_jre = ('case "$*" in *"-srcstoretype PKCS12"*) echo "keytool error: java.io.IOException: '
               'Unsupported PKCS12 secret value type 48"; exit 1;; esac\nexec REAL "$@"')
    script, log = wrapper(tmp_path, jdk, old_jre)
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, backend='keytool', keytool_path=script,
                                                ranges=['KBC001-003']))
    assert res['keytool']['method'] == 'genseckey' and res['keytool']['runs'] == 5
    assert 'Unsupported PKCS12 secret value type' in res['keytool']['reason']
    assert log.read_text().count('-genseckey') == 3
    assert {a: v[0] for a, v in java_keycheck(path, PW).items()} == our_fingerprints(path)
    assert os.listdir(private_tmp) == []
    assert [n for n in os.listdir(tmp_path) if n.startswith('.tapecrypt-')] == []  # keytool's work files went too


def test_a_failed_batch_on_a_capable_jre_changes_nothing(tmp_path, jdk, private_tmp):
    path = tmp_path / 'EKMKeys.jck'
    run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['KBD001-002'], iteration_count=10000))
    before = path.read_bytes()
    # The batch fails (as a full disk or a killed JVM would); the one-key probe works, so this is an error.
    broken = ('case "$*" in *part0.jck*) echo "keytool error: java.io.IOException: No space left on device"; exit 1;; esac\n'
              'exec REAL "$@"')
    script, _log = wrapper(tmp_path, jdk, broken)
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, backend='keytool', keytool_path=script,
                                                ranges=['KBD001-005']), expect_fail=True)
    assert 'No space left on device' in res['msg'] and 'Nothing was changed' in res['msg']
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ['EKMKeys.jck', 'keytool', 'keytool.log', 'tmp']
    assert os.listdir(private_tmp) == []
    assert [n for n in os.listdir(tmp_path) if n.startswith('.tapecrypt-')] == []  # keytool's work files went too
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
