# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The keystore modules against the real JDK: keytool backend, verify_with_keytool, Java reading our keys."""
from __future__ import annotations

import hashlib
import os
import stat

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore_info as info_module
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import run_module

PW = 'interop-store-pass'


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def fingerprints(path, password=PW):
    with open(path, 'rb') as f:
        ks = _jceks.load(f.read(), password)
    return {e.alias: _keystore.fingerprint(_jceks.unseal(e, password)[1]) for e in ks.entries if e.kind == 'secret'}


def test_java_reads_every_key_the_module_wrote_at_default_iterations(tmp_path, java_keycheck, keytool):
    path = tmp_path / 'EKMKeys.jck'
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['JVA001-004']))
    assert res['created'] == ['JVA001-004']
    java = java_keycheck(path, PW)
    assert {a: v[0] for a, v in java.items()} == fingerprints(path)
    assert all(v[1:] == ('AES', 256) for v in java.values())
    listed = keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass=PW).stdout
    assert 'Your keystore contains 4 entries' in listed
    info = run_module(info_module.main, dict(path=str(path), password=PW, fingerprints=True))
    assert {e['alias']: e['fingerprint'] for e in info['keystore']['entries']} == {a: v[0] for a, v in java.items()}


def test_keytool_backend_with_the_real_keytool(tmp_path, java_keycheck, keytool):
    path = tmp_path / 'EKMKeys.jck'
    keytool('-genkeypair', '-alias', 'server', '-keyalg', 'RSA', '-keysize', '2048', '-dname', 'CN=ekm',
            '-storetype', 'JCEKS', '-keystore', path, storepass=PW, keypass=PW)
    before = {e.alias: e.body for e in _jceks.load(path.read_bytes(), PW).entries}
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, backend='keytool', ranges=['KTB001-003']))
    assert res['changed'] is True and res['created'] == ['KTB001-003'] and res['total'] == 4
    after = _jceks.load(path.read_bytes(), PW)
    assert after.get('server').body == before['server']
    assert set(java_keycheck(path, PW)) == {'ktb000000000000000001', 'ktb000000000000000002', 'ktb000000000000000003'}
    again = run_module(keystore_module.main, dict(path=str(path), password=PW, backend='keytool', ranges=['KTB001-003']))
    assert again['changed'] is False


def test_verify_with_keytool_accepts_what_this_jdk_reads(tmp_path):
    path = tmp_path / 'EKMKeys.jck'
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['VFA001-003'], iteration_count=10000,
                                                verify_with_keytool=True))
    assert res['changed'] is True and res['verified_with_keytool'] is True
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['VFA001-003'], key_password='other-keypass',
                                                aliases=['vf-extra'], iteration_count=10000, verify_with_keytool=True))
    assert res['verified_with_keytool'] is True and res['created'] == ['vf-extra']


def test_verify_with_keytool_failure_keeps_the_old_file(tmp_path):
    """A JRE that cannot decrypt our entries (here: a keytool that fails as IBM's might) changes nothing."""
    path = tmp_path / 'EKMKeys.jck'
    run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['VFB001-002'], iteration_count=10000))
    before = sha(path)
    fake = tmp_path / 'ibm-keytool'
    fake.write_text('#!/bin/sh\necho "keytool error: java.security.UnrecoverableKeyException: '
                    'com.sun.crypto.provider.SealedObjectForKeyProtector not found" >&2\nexit 1\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    res = run_module(keystore_module.main, dict(path=str(path), password=PW, ranges=['VFB001-005'], iteration_count=10000,
                                                verify_with_keytool=True, keytool_path=str(fake)), expect_fail=True)
    assert 'cannot read the keys' in res['msg'] and 'backend: keytool' in res['msg']
    assert 'SealedObjectForKeyProtector' in res['msg']
    assert PW not in res['msg']
    assert sha(path) == before
    assert sorted(os.listdir(tmp_path)) == ['EKMKeys.jck', 'ibm-keytool']
