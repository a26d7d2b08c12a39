# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import os
import struct
import sys
import time

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks as jceks

FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures', 'jceks')
LOW = 1000  # PBE iterations for stores the tests write themselves

# Known values of the keytool-made fixtures (see fixtures/jceks/README.md).
AES256_KEY = bytes.fromhex('6eff0d2484e1f245a711a8a33f8f2e271fe59aaeced4357896dcb282641bb12b')
MIXED_SECRETS = {
    'aeskey': ('changeit', 'AES', bytes.fromhex('24fcf3ef7efc7bde847a2bd1cd646e6801a9474722d3925df9bce9f0c048d191')),
    'deskey': ('despass1', 'DESede', bytes.fromhex('a4b9fe9d9b3bbc40da85bf70640b4f5d89989b0402dc6132')),
    'hmackey': ('hmacpass1', 'HmacSHA256', bytes.fromhex('1a5d3c9f9eba1060937380410ad1a8dd0409a69e0d382e0f84d83d27393420ef')),
}
MIXED_ORDER = [('trusted', 'trusted'), ('deskey', 'secret'), ('hmackey', 'secret'), ('aeskey', 'secret'), ('rsakey', 'private')]


def fixture(name):
    with open(os.path.join(FIXTURES, name), 'rb') as handle:
        return handle.read()


def store_hash(password, payload):
    """The JCEKS integrity hash, written out independently of the module."""
    return hashlib.sha1(password.encode('utf-16-be') + b'Mighty Aphrodite' + payload).digest()


def reference_derive(password, salt, iterations):
    """PBEWithMD5AndTripleDES key and IV with hashlib's MD5 (a second implementation to check the module's)."""
    halves = [salt[:4], salt[4:]]
    if halves[0] == halves[1]:
        halves[0] = halves[0][::-1]
    out = b''
    for half in halves:
        digest = half
        for dummy in range(iterations):
            digest = hashlib.md5(digest + password).digest()
        out += digest
    return out[:24], out[24:]


def triple_des(key, iv, data, encrypt):
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes
    cipher = Cipher(TripleDES(key), modes.CBC(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


def pkcs5(data):
    pad = 8 - len(data) % 8
    return data + bytes([pad]) * pad


def jutf(text):
    raw = text.encode('utf-8')
    return struct.pack('>H', len(raw)) + raw


def java_object_with_byte_array(class_name, field, value):
    """A serialized object of `class_name` with one byte[] field, as ObjectOutputStream writes it."""
    return (b'\xac\xed\x00\x05\x73\x72' + jutf(class_name) + b'\x11\x22\x33\x44\x55\x66\x77\x88\x02\x00\x01'
            + b'[' + jutf(field) + b'\x74' + jutf('[B') + b'\x78\x70'
            + b'\x75\x72' + jutf('[B') + bytes.fromhex('acf317f8060854e0') + b'\x02\x00\x00\x78\x70'
            + struct.pack('>I', len(value)) + value)


def entry_header(alias, created=1700000000000):
    return struct.pack('>I', 3) + jutf(alias) + struct.pack('>q', created)


def store_bytes(bodies, password='changeit', magic=0xCECECECE, version=2):
    payload = struct.pack('>III', magic, version, len(bodies)) + b''.join(bodies)
    return payload + store_hash(password, payload)


def splice_ciphertext(body, ciphertext):
    """Replace the encrypted content of a SunJCE entry (layout of keytool's files)."""
    marker = bytes.fromhex('7571007e0005')
    at = body.index(marker) + len(marker)
    old_len = struct.unpack_from('>I', body, at)[0]
    return body[:at] + struct.pack('>I', len(ciphertext)) + ciphertext + body[at + 4 + old_len:]


@pytest.fixture(scope='module')
def small_store():
    keystore = jceks.new_keystore()
    keystore.add(jceks.seal_secret_key('k1', bytes(range(32)), 'changeit', iteration_count=LOW, created=1700000000000))
    return jceks.dump(keystore, 'changeit')


# --- keytool fixtures ----------------------------------------------------------------------------

def test_keytool_aes256_reads_unseals_and_reseals_byte_identical():
    data = fixture('aes256.jceks')
    keystore = jceks.load(data, 'changeit')
    assert keystore.magic == jceks.MAGIC_JCEKS and keystore.version == 2
    assert keystore.aliases() == ['tapekey1']
    entry = keystore.get('tapekey1')
    assert entry.kind == 'secret' and entry.is_sunjce
    info = entry.sealed()
    assert info.class_name == 'com.sun.crypto.provider.SealedObjectForKeyProtector'
    assert (info.salt.hex(), info.iteration_count, len(info.ciphertext)) == ('95044b2eae9e8ed0', 200000, 160)
    assert info.params_alg == info.seal_alg == 'PBEWithMD5AndTripleDES'
    assert entry.guess_secret_key() == ('AES', 256)
    assert jceks.unseal(entry, 'changeit') == ('AES', AES256_KEY)

    again = jceks.seal_secret_key('tapekey1', AES256_KEY, 'changeit', iteration_count=info.iteration_count,
                                  created=entry.created, salt=info.salt)
    assert again.body == entry.body
    rebuilt = jceks.new_keystore()
    rebuilt.add(again)
    assert jceks.dump(rebuilt, 'changeit') == data


def test_keytool_mixed_store_lists_every_entry_and_unseals_secret_keys():
    keystore = jceks.load(fixture('mixed.jceks'), 'changeit')
    assert [(e.alias, e.kind) for e in keystore.entries] == MIXED_ORDER
    assert [e.tag for e in keystore.entries] == [2, 3, 3, 3, 1]
    for alias, (password, algorithm, key) in MIXED_SECRETS.items():
        assert jceks.unseal(keystore.get(alias), password) == (algorithm, key)
    assert keystore.get('aeskey').guess_secret_key() == ('AES', 256)
    assert keystore.get('hmackey').guess_secret_key() == (None, None)
    assert keystore.get('deskey').guess_secret_key() == (None, None)
    assert keystore.get('rsakey').guess_secret_key() == (None, None)
    assert not keystore.get('trusted').is_sunjce


def test_keytool_mixed_store_dumps_byte_identical():
    data = fixture('mixed.jceks')
    keystore = jceks.load(data, 'changeit')
    assert jceks.dump(keystore, 'changeit') == data
    copy = jceks.load(jceks.dump(keystore, 'other password'), 'other password')
    assert [e.body for e in copy.entries] == [e.body for e in keystore.entries]


@pytest.mark.parametrize('alias', ['aeskey', 'hmackey'])
def test_keytool_secret_key_spec_entries_reseal_byte_identical(alias):
    entry = jceks.load(fixture('mixed.jceks')).get(alias)
    password, algorithm, key = MIXED_SECRETS[alias]
    info = entry.sealed()
    again = jceks.seal_secret_key(alias, key, password, info.iteration_count, algorithm, entry.created, info.salt)
    assert again.body == entry.body


def test_keyrep_entry_is_unsealed_like_java():
    entry = jceks.load(fixture('mixed.jceks')).get('deskey')
    password, algorithm, key = MIXED_SECRETS['deskey']
    info = entry.sealed()
    derived_key, iv = reference_derive(password.encode(), info.salt, info.iteration_count)
    plaintext = triple_des(derived_key, iv, info.ciphertext, encrypt=False)
    assert b'java.security.KeyRep' in plaintext  # the case under test: not a SecretKeySpec
    assert jceks.unseal(entry, password) == (algorithm, key)


def test_wrong_key_password_is_an_unseal_error():
    entry = jceks.load(fixture('mixed.jceks')).get('deskey')
    with pytest.raises(jceks.JceksUnsealError, match="Key 'deskey' could not be decrypted: the key password is wrong"):
        jceks.unseal(entry, 'changeit')


def test_jks_store_is_read_and_private_keys_are_not_converted():
    keystore = jceks.load(fixture('mixed.jks'), 'changeit')
    assert keystore.magic == jceks.MAGIC_JKS
    assert [(e.alias, e.kind) for e in keystore.entries] == [('trusted', 'trusted'), ('eckey', 'private')]
    with pytest.raises(jceks.JceksError, match="'eckey' is a private key protected by the JKS algorithm"):
        jceks.dump(keystore, 'changeit')
    certs_only = jceks.new_keystore()
    certs_only.add(keystore.get('trusted'))
    out = jceks.load(jceks.dump(certs_only, 'changeit'), 'changeit')
    assert out.magic == jceks.MAGIC_JCEKS
    assert out.get('trusted').body == keystore.get('trusted').body


def _strip_cert_types(body, tag):
    """The version 1 form of a version 2 tag 1 or 2 entry (no certificate type strings)."""
    pos = 4 + 2 + struct.unpack_from('>H', body, 4)[0] + 8
    out = body[:pos]
    count = 1
    if tag == 1:
        key_len = struct.unpack_from('>I', body, pos)[0]
        out += body[pos:pos + 4 + key_len + 4]
        count = struct.unpack_from('>I', body, pos + 4 + key_len)[0]
        pos += 4 + key_len + 4
    for dummy in range(count):
        pos += 2 + struct.unpack_from('>H', body, pos)[0]
        cert_len = struct.unpack_from('>I', body, pos)[0]
        out += body[pos:pos + 4 + cert_len]
        pos += 4 + cert_len
    assert pos == len(body)
    return out


def test_version_1_store_is_read_and_written_as_version_2():
    v2 = jceks.load(fixture('mixed.jceks'))
    v1_bodies = [_strip_cert_types(e.body, e.tag) if e.tag in (1, 2) else e.body for e in v2.entries]
    v1 = jceks.load(store_bytes(v1_bodies, version=1), 'changeit')
    assert v1.version == 1
    assert [(e.alias, e.kind) for e in v1.entries] == MIXED_ORDER
    assert jceks.dump(v1, 'changeit') == fixture('mixed.jceks')


# --- writing and round trips -----------------------------------------------------------------------

def test_round_trip_of_many_keys():
    keys = [('dca%018x' % n, os.urandom(32)) for n in range(1, 6)]
    entries = jceks.seal_secret_keys(keys, 'keypass1', iteration_count=LOW, created=1700000000123)
    keystore = jceks.new_keystore()
    for entry in entries:
        keystore.add(entry)
    loaded = jceks.load(jceks.dump(keystore, 'storepass'), 'storepass')
    assert loaded.aliases() == [alias for alias, dummy in keys]
    for (alias, key), entry in zip(keys, loaded.entries):
        assert entry.created == 1700000000123
        assert entry.sha256 == hashlib.sha256(entry.body).hexdigest()
        assert entry.sealed().iteration_count == LOW
        assert entry.guess_secret_key() == ('AES', 256)
        assert jceks.unseal(entry, 'keypass1') == ('AES', key)


def test_sealed_entry_layout_and_pbe_match_an_independent_implementation():
    key = os.urandom(32)
    salt = bytes.fromhex('0102030405060708')
    entry = jceks.seal_secret_key('k1', key, 'pw-123', iteration_count=LOW, created=42, salt=salt)
    assert entry.body.startswith(entry_header('k1', 42) + b'\xac\xed\x00\x05')
    # keytool's entry for a 2-letter alias is 481 bytes at 200000 iterations; 1000 takes one DER byte less.
    assert len(entry.body) == 480
    info = entry.sealed()
    assert (info.salt, info.iteration_count) == (salt, LOW)
    derived_key, iv = reference_derive(b'pw-123', salt, LOW)
    plaintext = triple_des(derived_key, iv, info.ciphertext, encrypt=False)
    assert len(plaintext) == 160 and plaintext.endswith(b'\x03\x03\x03')
    assert plaintext[:-3].endswith(struct.pack('>I', 32) + key)
    assert b'javax.crypto.spec.SecretKeySpec' in plaintext


def test_equal_salt_halves_reverse_the_first_half_like_the_jdk():
    salt = bytes.fromhex('1122334411223344')
    key = os.urandom(32)
    entry = jceks.seal_secret_key('same-halves', key, 'changeit', iteration_count=LOW, salt=salt)
    info = entry.sealed()
    assert info.salt == salt  # stored as given; only the derivation reverses
    derived_key, iv = reference_derive(b'changeit', bytes.fromhex('4433221111223344'), LOW)
    assert triple_des(derived_key, iv, info.ciphertext, encrypt=False)[:-3].endswith(key)
    assert jceks.unseal(entry, 'changeit') == ('AES', key)


def test_random_salts_have_unequal_halves(mocker):
    draws = [b'\x01\x02\x03\x04\x01\x02\x03\x04', b'\x01\x02\x03\x04\x05\x06\x07\x08']
    mocker.patch.object(jceks.os, 'urandom', side_effect=lambda n: draws.pop(0))
    entry = jceks.seal_secret_key('k', b'\x00' * 32, 'changeit', iteration_count=1)
    assert entry.sealed().salt == b'\x01\x02\x03\x04\x05\x06\x07\x08'


def test_uppercase_alias_is_lowercased_and_found_in_any_case():
    entry = jceks.seal_secret_key('DCA00000000000000000001F', os.urandom(32), 'changeit', iteration_count=LOW)
    assert entry.alias == 'dca00000000000000000001f'
    keystore = jceks.new_keystore()
    keystore.add(entry)
    loaded = jceks.load(jceks.dump(keystore, 'changeit'))
    assert loaded.aliases() == ['dca00000000000000000001f']
    assert loaded.get('DCA00000000000000000001F') is loaded.entries[0]
    assert 'Dca00000000000000000001f' in loaded and 'other' not in loaded
    assert len(loaded) == 1


def test_add_refuses_an_existing_alias_in_any_case():
    keystore = jceks.new_keystore()
    first = jceks.seal_secret_key('key1', os.urandom(32), 'changeit', iteration_count=LOW)
    keystore.add(first)
    with pytest.raises(jceks.JceksError, match="already holds an entry with alias 'key1'; existing entries are never replaced"):
        keystore.add(jceks.seal_secret_key('KEY1', os.urandom(32), 'changeit', iteration_count=LOW))
    assert keystore.entries == [first]


def test_dump_refuses_duplicate_aliases_put_in_the_list_directly():
    keystore = jceks.new_keystore()
    keystore.entries.append(jceks.seal_secret_key('a', os.urandom(32), 'changeit', iteration_count=1))
    keystore.entries.append(jceks.seal_secret_key('a', os.urandom(32), 'changeit', iteration_count=1))
    with pytest.raises(jceks.JceksError, match="alias 'a' twice"):
        jceks.dump(keystore, 'changeit')


def test_dump_refuses_an_entry_whose_bytes_name_another_alias():
    entry = jceks.seal_secret_key('a', os.urandom(32), 'changeit', iteration_count=1)
    keystore = jceks.new_keystore()
    keystore.add(jceks.Entry('b', entry.tag, entry.created, entry.body))
    with pytest.raises(jceks.JceksError, match='do not read back with the aliases'):
        jceks.dump(keystore, 'changeit')


def test_batch_refuses_duplicate_aliases():
    with pytest.raises(jceks.JceksError, match="Alias 'x' appears twice"):
        jceks.seal_secret_keys([('x', os.urandom(32)), ('X', os.urandom(32))], 'changeit', iteration_count=1)


@pytest.mark.parametrize('password', ['pässwort', 'tab\there', 'new\nline', 'euro€'])
def test_non_ascii_key_password_is_refused_without_echoing_it(password):
    with pytest.raises(jceks.JceksError, match='printable ASCII') as err:
        jceks.seal_secret_key('k', os.urandom(32), password, iteration_count=1)
    assert password not in str(err.value)
    with pytest.raises(jceks.JceksError, match='printable ASCII'):
        jceks.seal_secret_keys([('k', os.urandom(32))], password, iteration_count=1)


@pytest.mark.parametrize('count', [0, -1, 5000001, True, 1.5, '1000'])
def test_iteration_count_outside_the_range_is_refused(count):
    with pytest.raises(jceks.JceksError, match='iteration count'):
        jceks.seal_secret_key('k', os.urandom(32), 'changeit', iteration_count=count)


def test_bad_arguments_are_refused():
    with pytest.raises(jceks.JceksError, match='8 bytes'):
        jceks.seal_secret_key('k', os.urandom(32), 'changeit', iteration_count=1, salt=b'1234567')
    with pytest.raises(jceks.JceksError, match='non-empty bytes'):
        jceks.seal_secret_key('k', b'', 'changeit', iteration_count=1)
    with pytest.raises(jceks.JceksError, match='non-empty string'):
        jceks.seal_secret_key('', os.urandom(32), 'changeit', iteration_count=1)
    with pytest.raises(jceks.JceksError, match='milliseconds'):
        jceks.seal_secret_key('k', os.urandom(32), 'changeit', iteration_count=1, created=2 ** 63)


def test_created_defaults_to_now():
    before = int(time.time() * 1000)
    entry = jceks.seal_secret_key('k', os.urandom(32), 'changeit', iteration_count=1)
    assert before <= entry.created <= int(time.time() * 1000)


def test_unicode_alias_is_written_in_java_modified_utf8():
    alias = 'n\u00fcl\x00-\U0001f600'
    entry = jceks.seal_secret_key(alias, os.urandom(32), 'changeit', iteration_count=1)
    expected = b'n\xc3\xbcl\xc0\x80-\xed\xa0\xbd\xed\xb8\x80'  # NUL as C0 80, U+1F600 as two 3-byte surrogates
    assert entry.body[4:6 + len(expected)] == struct.pack('>H', len(expected)) + expected
    keystore = jceks.new_keystore()
    keystore.add(entry)
    assert jceks.load(jceks.dump(keystore, 'changeit'), 'changeit').aliases() == [alias]


def test_aes128_and_other_algorithms_are_not_guessed_as_aes256():
    aes128 = jceks.seal_secret_key('short', os.urandom(16), 'changeit', iteration_count=1)
    assert aes128.guess_secret_key() == (None, None)
    assert jceks.unseal(aes128, 'changeit')[1].__len__() == 16


def test_empty_store_round_trip():
    data = jceks.dump(jceks.new_keystore(), 'changeit')
    assert data == struct.pack('>III', 0xCECECECE, 2, 0) + store_hash('changeit', struct.pack('>III', 0xCECECECE, 2, 0))
    assert len(jceks.load(data, 'changeit')) == 0


def test_non_ascii_store_password():
    keystore = jceks.new_keystore()
    keystore.add(jceks.seal_secret_key('k', os.urandom(32), 'keypass', iteration_count=1))
    data = jceks.dump(keystore, 'pässwört€\U0001f511')
    assert data[-20:] == store_hash('pässwört€\U0001f511', data[:-20])
    assert jceks.load(data, 'pässwört€\U0001f511').aliases() == ['k']
    with pytest.raises(jceks.JceksIntegrityError) as err:
        jceks.load(data, 'passwort')
    assert err.value.likely_cause == 'password'


def test_generate_aes_key():
    first, second = jceks.generate_aes_key(), jceks.generate_aes_key()
    assert len(first) == len(second) == 32 and first != second


# --- batches on several processes ---------------------------------------------------------------------

def test_batch_in_processes_keeps_input_order():
    keys = [('k%02d' % n, os.urandom(32)) for n in range(12)]
    entries = jceks.seal_secret_keys(keys, 'changeit', iteration_count=LOW, processes=2)
    assert [e.alias for e in entries] == [alias for alias, dummy in keys]
    for (alias, key), entry in zip(keys, entries):
        assert jceks.unseal(entry, 'changeit') == ('AES', key)


def test_worker_processes_derive_the_same_keys_as_one_process():
    salts = [os.urandom(8) for dummy in range(4)]
    derived = jceks._derive_in_processes(b'changeit', salts, LOW, 2)  # pylint: disable=protected-access
    assert derived is not None, 'the fork pool did not run on this host'
    assert derived == [b''.join(reference_derive(b'changeit', salt, LOW)) for salt in salts]


def test_batch_falls_back_to_one_process_when_no_pool_starts(mocker):
    import concurrent.futures
    pool = mocker.patch.object(concurrent.futures, 'ProcessPoolExecutor', side_effect=OSError('no processes'))
    keys = [('k%02d' % n, os.urandom(32)) for n in range(10)]
    entries = jceks.seal_secret_keys(keys, 'changeit', iteration_count=LOW, processes=2)
    assert pool.called
    assert [jceks.unseal(e, 'changeit')[1] for e in entries] == [key for dummy, key in keys]


def test_small_batches_stay_in_one_process(mocker):
    spy = mocker.spy(jceks, '_derive_in_processes')
    jceks.seal_secret_keys([('k%d' % n, os.urandom(32)) for n in range(8)], 'changeit', iteration_count=1, processes=4)
    assert not spy.called


# --- integrity, corruption, truncation -------------------------------------------------------------------

def test_wrong_store_password_says_the_password_is_likely_wrong(small_store):
    with pytest.raises(jceks.JceksIntegrityError) as err:
        jceks.load(small_store, 'wrong password')
    assert err.value.likely_cause == 'password'
    assert 'store password is most likely wrong' in str(err.value)


def test_altered_file_with_the_right_password_says_altered(small_store):
    data = bytearray(small_store)
    data[-1] ^= 0x01
    with pytest.raises(jceks.JceksIntegrityError) as err:
        jceks.load(bytes(data), 'changeit')
    assert err.value.likely_cause == 'altered'
    assert 'unlocks key' in str(err.value) and 'altered or corrupted' in str(err.value)


def test_integrity_failure_without_a_secret_key_cannot_tell_why():
    keystore = jceks.load(fixture('mixed.jks'))
    certs_only = jceks.new_keystore()
    certs_only.add(keystore.get('trusted'))
    data = jceks.dump(certs_only, 'changeit')
    with pytest.raises(jceks.JceksIntegrityError, match='either the store password is wrong or the keystore file was altered') as err:
        jceks.load(data, 'changeit2')
    assert err.value.likely_cause == 'unknown'


def test_correct_password_never_unseals(small_store, mocker):
    unseal = mocker.patch.object(jceks, 'unseal', side_effect=AssertionError('unseal must not run'))
    assert jceks.load(small_store, 'changeit').aliases() == ['k1']
    assert not unseal.called


@pytest.mark.parametrize('mask', [0x01, 0x80, 0xFF])
def test_every_flipped_byte_is_detected_with_a_password(small_store, mask):
    for offset in range(len(small_store)):
        data = bytearray(small_store)
        data[offset] ^= mask
        with pytest.raises((jceks.JceksFormatError, jceks.JceksIntegrityError)):
            jceks.load(bytes(data), 'changeit')


def test_every_truncation_is_a_format_error():
    data = fixture('mixed.jceks')
    for length in range(len(data)):
        with pytest.raises(jceks.JceksFormatError):
            jceks.load(data[:length])
    with pytest.raises(jceks.JceksFormatError, match='truncated'):
        jceks.load(data[:-1], 'changeit')


def test_trailing_bytes_are_refused(small_store):
    with pytest.raises(jceks.JceksFormatError, match='1 unexpected bytes follow its 1 entries'):
        jceks.load(small_store + b'\x00')


@pytest.mark.parametrize('data,message', [
    (b'', 'empty'),
    (b'hello', 'only 5 bytes'),
    (bytes.fromhex('308209c40201033082') + b'\x00' * 64, 'not a JCEKS or JKS keystore'),
    (b'PK\x03\x04' + b'\x00' * 64, 'not a JCEKS or JKS keystore'),
    (struct.pack('>III', 0xCECECECE, 3, 0) + b'\x00' * 20, 'format version 3'),
    (struct.pack('>III', 0xCECECECE, 2, 0) + b'\x00' * 19, 'truncated'),
    (store_bytes([struct.pack('>I', 4) + jutf('x') + struct.pack('>q', 0)]), 'unknown entry type 4'),
    (store_bytes([entry_header('x') + b'\x00\x01\x02\x03']), 'not a Java serialization stream'),
])
def test_not_a_keystore(data, message):
    with pytest.raises(jceks.JceksFormatError, match=message):
        jceks.load(data)


def test_duplicate_alias_in_a_file_is_refused(small_store):
    body = jceks.load(small_store).entries[0].body
    with pytest.raises(jceks.JceksFormatError, match="alias 'k1' twice"):
        jceks.load(store_bytes([body, body]))


# --- entries other providers wrote, and hostile input ----------------------------------------------------

def test_outer_class_of_another_provider_is_listed_but_not_unsealed():
    data = fixture('mixed.jceks').replace(b'com.sun.crypto.provider.SealedObjectForKeyProtector',
                                          b'com.ibm.crypto.provider.SealedObjectForKeyProtector')
    keystore = jceks.load(data[:-20] + store_hash('changeit', data[:-20]), 'changeit')
    assert [(e.alias, e.kind) for e in keystore.entries] == MIXED_ORDER
    entry = keystore.get('aeskey')
    assert entry.sealed().class_name == 'com.ibm.crypto.provider.SealedObjectForKeyProtector'
    assert entry.sealed().iteration_count == 10000
    assert not entry.is_sunjce
    assert entry.guess_secret_key() == (None, None)
    with pytest.raises(jceks.JceksUnsupportedError, match='com.ibm.crypto.provider.SealedObjectForKeyProtector') as err:
        jceks.unseal(entry, 'changeit')
    assert '`backend: keytool`' in str(err.value)
    assert jceks.dump(keystore, 'changeit') == data[:-20] + store_hash('changeit', data[:-20])


def test_inner_key_class_of_another_provider_is_unsupported():
    entry = jceks.load(fixture('mixed.jceks')).get('aeskey')
    info = entry.sealed()
    derived_key, iv = reference_derive(b'changeit', info.salt, info.iteration_count)
    inner = java_object_with_byte_array('com.ibm.crypto.provider.AESSecretKey', 'key', os.urandom(32))
    body = splice_ciphertext(entry.body, triple_des(derived_key, iv, pkcs5(inner), encrypt=True))
    other = jceks.load(store_bytes([body]), 'changeit').entries[0]
    assert other.is_sunjce  # nothing outside the ciphertext differs
    with pytest.raises(jceks.JceksUnsupportedError, match='com.ibm.crypto.provider.AESSecretKey') as err:
        jceks.unseal(other, 'changeit')
    assert '`backend: keytool`' in str(err.value)


def test_entry_that_is_no_sealed_object_is_listed_but_unsupported():
    stream = java_object_with_byte_array('com.ibm.crypto.provider.AESSecretKey', 'key', os.urandom(32))
    keystore = jceks.load(store_bytes([entry_header('ibmkey') + stream]), 'changeit')
    entry = keystore.get('ibmkey')
    assert entry.kind == 'secret' and not entry.is_sunjce
    assert entry.guess_secret_key() == (None, None)
    for call in (entry.sealed, lambda: jceks.unseal(entry, 'changeit')):
        with pytest.raises(jceks.JceksUnsupportedError, match='com.ibm.crypto.provider.AESSecretKey.*`backend: keytool`'):
            call()


def test_unknown_seal_algorithm_is_not_unsealed():
    data = fixture('mixed.jceks')
    body = jceks.load(data).get('aeskey').body
    assert body.endswith(b'PBEWithMD5AndTripleDES')
    entry = jceks.load(store_bytes([body[:-1] + b'X'])).entries[0]
    assert not entry.is_sunjce
    with pytest.raises(jceks.JceksUnsupportedError, match='PBEWithMD5AndTripleDEX'):
        jceks.unseal(entry, 'changeit')


def test_iteration_count_above_the_java_limit_is_refused():
    body = jceks.load(fixture('aes256.jceks')).entries[0].body
    der_200000 = bytes.fromhex('0203030d40')
    assert body.count(der_200000) == 1
    entry = jceks.load(store_bytes([body.replace(der_200000, bytes.fromhex('02034c4b41'))])).entries[0]  # 5000001
    with pytest.raises(jceks.JceksFormatError, match='iteration count of 5000001'):
        jceks.unseal(entry, 'changeit')


def test_bad_padding_and_bad_inner_objects_are_unseal_errors():
    entry = jceks.load(fixture('mixed.jceks')).get('aeskey')
    info = entry.sealed()
    derived_key, iv = reference_derive(b'changeit', info.salt, info.iteration_count)
    for plaintext in (b'\x00' * 15 + b'\x09', pkcs5(b'\xac\xed\x00\x05\x73'), pkcs5(b'not java at all')):
        body = splice_ciphertext(entry.body, triple_des(derived_key, iv, plaintext, encrypt=True))
        with pytest.raises(jceks.JceksUnsealError):
            jceks.unseal(jceks.load(store_bytes([body])).entries[0], 'changeit')


def _hostile(stream):
    return store_bytes([entry_header('evil') + stream])


def test_deeply_nested_stream_is_refused_without_recursion_error():
    # 100000 nested Object[1] arrays: new array class once, then references to it.
    array_class = b'\x72' + jutf('[Ljava.lang.Object;') + b'\x00' * 8 + b'\x02\x00\x00\x78\x70'
    nested = b'\x75' + array_class + b'\x00\x00\x00\x01' + (b'\x75\x71\x00\x7e\x00\x00\x00\x00\x00\x01' * 100000) + b'\x70'
    with pytest.raises(jceks.JceksFormatError, match='nested more than'):
        jceks.load(_hostile(b'\xac\xed\x00\x05' + nested))


def test_huge_counts_are_refused_quickly():
    huge_array = b'\xac\xed\x00\x05\x75\x72' + jutf('[B') + b'\x00' * 8 + b'\x02\x00\x00\x78\x70\x7f\xff\xff\xff'
    with pytest.raises(jceks.JceksFormatError, match='truncated'):
        jceks.load(_hostile(huge_array))
    many_entries = struct.pack('>III', 0xCECECECE, 2, 0xFFFFFFFF) + b'\x00' * 20
    with pytest.raises(jceks.JceksFormatError, match='truncated'):
        jceks.load(many_entries)


def test_cyclic_superclass_is_refused():
    own_super = b'\xac\xed\x00\x05\x73\x72' + jutf('Loop') + b'\x00' * 8 + b'\x02\x00\x00\x78\x71\x00\x7e\x00\x00'
    with pytest.raises(jceks.JceksFormatError, match='cyclic or overlong superclass chain'):
        jceks.load(_hostile(own_super))


def test_dangling_back_reference_is_refused():
    with pytest.raises(jceks.JceksFormatError, match='back-reference'):
        jceks.load(_hostile(b'\xac\xed\x00\x05\x71\x00\x7e\x00\x05'))


def test_load_and_listing_work_without_cryptography(monkeypatch, small_store):
    for name in [n for n in sys.modules if n == 'cryptography' or n.startswith('cryptography.')]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, 'cryptography', None)
    keystore = jceks.load(small_store, 'changeit')
    assert keystore.entries[0].guess_secret_key() == ('AES', 256)
    with pytest.raises(jceks.JceksError, match="needs the Python library 'cryptography'"):
        jceks.unseal(keystore.entries[0], 'changeit')
    with pytest.raises(jceks.JceksError, match="needs the Python library 'cryptography'"):
        jceks.seal_secret_key('k', os.urandom(32), 'changeit', iteration_count=1)
    with pytest.raises(jceks.JceksIntegrityError, match='either the store password is wrong'):
        jceks.load(small_store, 'wrong')


def test_entry_properties():
    entry = jceks.load(fixture('mixed.jceks')).get('rsakey')
    assert (entry.tag, entry.kind) == (jceks.TAG_PRIVATE_KEY, 'private')
    assert entry.body[:4] == b'\x00\x00\x00\x01'
    assert entry.sha256 == hashlib.sha256(entry.body).hexdigest()
    assert not entry.is_sunjce
    with pytest.raises(jceks.JceksError, match="'rsakey' is a private entry, not a secret key"):
        entry.sealed()
    assert 'rsakey' in repr(entry)
