# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The JCEKS engine against OpenJDK's keytool and KeyStore: what we write, Java reads, and back."""

from __future__ import annotations

import hashlib
import hmac
import os
import re

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks as jceks

LOW = 1000  # PBE iterations where the default is not under test; Java reads any count >= 1
# java_keycheck and keytool raise conftest.JavaCommandError, an AssertionError, when the JDK tool fails.


def fingerprint(key):
    return hmac.new(key, b'tapecrypt.ekm key fingerprint v1', hashlib.sha256).hexdigest()[:16]


def write_store(path, keys, storepass, keypass=None, iterations=LOW):
    keystore = jceks.new_keystore()
    for entry in jceks.seal_secret_keys(keys, keypass or storepass, iteration_count=iterations):
        keystore.add(entry)
    path.write_bytes(jceks.dump(keystore, storepass))
    return {alias.lower(): (fingerprint(key), 'AES', 256) for alias, key in keys}


def random_keys(count, prefix='dca'):
    return [('%s%018x' % (prefix, n), jceks.generate_aes_key()) for n in range(1, count + 1)]


def listed(output):
    """alias -> entry type from `keytool -list` output."""
    return dict(re.findall(r'^([^,\n]+), [^,\n]+, [^,\n]+, (\w+),', output, re.M))


def test_keytool_lists_every_entry_we_write(tmp_path, keytool):
    path = tmp_path / 'ours.jceks'
    expected = write_store(path, random_keys(5), 'changeit')
    out = keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass='changeit').stdout
    assert 'Your keystore contains 5 entries' in out
    assert listed(out) == {alias: 'SecretKeyEntry' for alias in expected}


def test_java_unseals_every_key_we_write(tmp_path, java_keycheck):
    path = tmp_path / 'ours.jceks'
    expected = write_store(path, random_keys(12), 'changeit')
    assert java_keycheck(path, 'changeit') == expected


def test_separate_key_password(tmp_path, java_keycheck):
    path = tmp_path / 'ours.jceks'
    expected = write_store(path, random_keys(3), 'store-pass', keypass='key-pass-1')
    assert java_keycheck(path, 'store-pass', 'key-pass-1') == expected
    with pytest.raises(AssertionError, match='UnrecoverableKeyException'):
        java_keycheck(path, 'store-pass', 'store-pass')


def test_non_ascii_store_password(tmp_path, keytool, java_keycheck):
    path = tmp_path / 'ours.jceks'
    expected = write_store(path, random_keys(2), 'pässwört€', keypass='ascii-keypass')
    out = keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass='pässwört€').stdout
    assert 'Your keystore contains 2 entries' in out
    assert java_keycheck(path, 'pässwört€', 'ascii-keypass') == expected


def test_wrong_store_password_is_refused_by_java(tmp_path, keytool):
    path = tmp_path / 'ours.jceks'
    write_store(path, random_keys(1), 'changeit')
    proc = keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass='changeiT', check=False)
    assert proc.returncode != 0
    assert 'password was incorrect' in proc.stdout + proc.stderr


def test_default_iteration_count(tmp_path, java_keycheck):
    path = tmp_path / 'ours.jceks'
    expected = write_store(path, random_keys(2), 'changeit', iterations=jceks.DEFAULT_ITERATION_COUNT)
    assert all(e.sealed().iteration_count == 200000 for e in jceks.load(path.read_bytes()).entries)
    assert java_keycheck(path, 'changeit') == expected


def test_special_aliases_and_equal_salt_halves(tmp_path, keytool, java_keycheck):
    keys = {'UPPER-Case': jceks.generate_aes_key(), 'ünïcode-alias': jceks.generate_aes_key(),
            'same-halves': jceks.generate_aes_key()}
    keystore = jceks.new_keystore()
    keystore.add(jceks.seal_secret_key('UPPER-Case', keys['UPPER-Case'], 'changeit', LOW))
    keystore.add(jceks.seal_secret_key('ünïcode-alias', keys['ünïcode-alias'], 'changeit', LOW))
    keystore.add(jceks.seal_secret_key('same-halves', keys['same-halves'], 'changeit', LOW, salt=bytes.fromhex('1122334411223344')))
    path = tmp_path / 'ours.jceks'
    path.write_bytes(jceks.dump(keystore, 'changeit'))
    assert java_keycheck(path, 'changeit') == {alias.lower(): (fingerprint(key), 'AES', 256) for alias, key in keys.items()}
    # Java looks aliases up lower-cased (as EKM does), so the entry is found under its original spelling.
    out = keytool('-list', '-alias', 'UPPER-Case', '-storetype', 'JCEKS', '-keystore', path, storepass='changeit').stdout
    assert out.startswith('UPPER-Case, ') and 'SecretKeyEntry' in out


def test_empty_store(tmp_path, keytool):
    path = tmp_path / 'empty.jceks'
    path.write_bytes(jceks.dump(jceks.new_keystore(), 'changeit'))
    out = keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass='changeit').stdout
    assert 'Your keystore contains 0 entries' in out


def make_mixed_store(path, keytool):
    """A store keytool made with every entry kind; secret keys with three different key passwords."""
    low = '-J-Djdk.jceks.iterationCount=10000'
    common = ['-storetype', 'JCEKS', '-keystore', path]
    keytool(low, '-genseckey', '-alias', 'aeskey', '-keyalg', 'AES', '-keysize', '256', *common,
            storepass='changeit', keypass='changeit')
    keytool(low, '-genkeypair', '-alias', 'rsakey', '-keyalg', 'RSA', '-keysize', '2048', '-dname', 'CN=interop',
            *common, storepass='changeit', keypass='changeit')
    cert = path.parent / 'rsakey.crt'
    keytool('-exportcert', '-rfc', '-alias', 'rsakey', '-file', cert, *common, storepass='changeit')
    keytool(low, '-importcert', '-alias', 'trusted', '-file', cert, *common, storepass='changeit')
    keytool(low, '-genseckey', '-alias', 'deskey', '-keyalg', 'DESede', *common, storepass='changeit', keypass='despass1')
    keytool(low, '-genseckey', '-alias', 'hmackey', '-keyalg', 'HmacSHA256', '-keysize', '256', *common,
            storepass='changeit', keypass='hmacpass1')


KEYPASSES = {'aeskey': 'changeit', 'deskey': 'despass1', 'hmackey': 'hmacpass1'}


def test_keytool_store_is_read_extended_and_still_read_by_java(tmp_path, keytool, java_keycheck):
    path = tmp_path / 'mixed.jceks'
    make_mixed_store(path, keytool)
    before_list = listed(keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass='changeit').stdout)
    assert before_list == {'aeskey': 'SecretKeyEntry', 'deskey': 'SecretKeyEntry', 'hmackey': 'SecretKeyEntry',
                           'rsakey': 'PrivateKeyEntry', 'trusted': 'trustedCertEntry'}
    before = java_keycheck(path, 'changeit', keypasses=KEYPASSES)

    original = path.read_bytes()
    keystore = jceks.load(original, 'changeit')
    for alias, password in KEYPASSES.items():
        algorithm, key = jceks.unseal(keystore.get(alias), password)
        assert before[alias] == (fingerprint(key), algorithm, len(key) * 8)
    old_bodies = {e.alias: e.body for e in keystore.entries}
    new_keys = random_keys(3, prefix='new')
    for entry in jceks.seal_secret_keys(new_keys, 'changeit', iteration_count=LOW):
        keystore.add(entry)
    path.write_bytes(jceks.dump(keystore, 'changeit'))

    assert {e.alias: e.body for e in jceks.load(path.read_bytes(), 'changeit').entries if e.alias in old_bodies} == old_bodies
    after_list = listed(keytool('-list', '-storetype', 'JCEKS', '-keystore', path, storepass='changeit').stdout)
    assert after_list == dict(before_list, **{alias: 'SecretKeyEntry' for alias, dummy in new_keys})
    after = java_keycheck(path, 'changeit', keypasses=KEYPASSES)
    assert after == dict(before, **{alias: (fingerprint(key), 'AES', 256) for alias, key in new_keys})
    # The key pair is still recoverable: keytool must decrypt it to copy it.
    out = keytool('-importkeystore', '-srckeystore', path, '-srcstoretype', 'JCEKS', '-srcalias', 'rsakey',
                  '-destkeystore', tmp_path / 'rsa.p12', '-deststoretype', 'PKCS12',
                  srcstorepass='changeit', deststorepass='changeit').stdout
    assert 'Existing entry alias rsakey exists' not in out
    assert listed(keytool('-list', '-storetype', 'PKCS12', '-keystore', tmp_path / 'rsa.p12', storepass='changeit').stdout) == {
        'rsakey': 'PrivateKeyEntry'}


def test_keytool_adds_to_our_store_and_we_read_its_key(tmp_path, keytool, java_keycheck):
    path = tmp_path / 'ours.jceks'
    expected = write_store(path, random_keys(2), 'changeit')
    ours = {e.alias: e.body for e in jceks.load(path.read_bytes()).entries}
    keytool('-genseckey', '-alias', 'fromkeytool', '-keyalg', 'AES', '-keysize', '256', '-storetype', 'JCEKS',
            '-keystore', path, storepass='changeit', keypass='changeit')
    keystore = jceks.load(path.read_bytes(), 'changeit')
    assert {e.alias: e.body for e in keystore.entries if e.alias != 'fromkeytool'} == ours
    algorithm, key = jceks.unseal(keystore.get('fromkeytool'), 'changeit')
    assert java_keycheck(path, 'changeit') == dict(expected, fromkeytool=(fingerprint(key), algorithm, 256))


def test_importkeystore_to_pkcs12(tmp_path, keytool, java_keycheck):
    path = tmp_path / 'ours.jceks'
    expected = write_store(path, random_keys(4), 'changeit')
    p12 = tmp_path / 'copy.p12'
    out = keytool('-importkeystore', '-srckeystore', path, '-srcstoretype', 'JCEKS', '-destkeystore', p12,
                  '-deststoretype', 'PKCS12', srcstorepass='changeit', deststorepass='changeit')
    text = out.stdout + out.stderr
    assert '4 entries successfully imported, 0 entries failed or cancelled' in text
    assert java_keycheck(p12, 'changeit', storetype='PKCS12') == expected


def test_keycheck_fixture_reports_java_failures(tmp_path, java_keycheck):
    path = tmp_path / 'not-a-store.jceks'
    path.write_bytes(os.urandom(64))
    with pytest.raises(AssertionError, match='KeyCheck exited with 1'):
        java_keycheck(path, 'changeit')
