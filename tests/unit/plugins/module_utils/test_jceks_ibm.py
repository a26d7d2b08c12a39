# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The IBM JRE's dialect of JCEKS secret keys, checked against its documented layout.

``ibm_entry()`` below writes an entry the way IBM's keytool lays it out (docs/keystores.md,
"Dialects"), field by field, independently of the module: a plain javax.crypto.SealedObject
(serialVersionUID 3e363da6c3b75470) with encodedParams, encryptedContent, paramsAlg "PBE" and
sealAlg "PBEWithMD5AndTripleDES", around a serialized com.ibm.crypto.provider.AESSecretKey
(serialVersionUID 210910f87f2cf340) whose one field ``key`` holds the raw key.
"""
from __future__ import annotations

import hashlib
import os
import struct

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks as jceks
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.test_jceks import (
    entry_header, pkcs5, reference_derive, splice_ciphertext, store_bytes, triple_des)

SEALED_OBJECT_SUID = bytes.fromhex('3e363da6c3b75470')
AES_SECRET_KEY_SUID = bytes.fromhex('210910f87f2cf340')
BYTE_ARRAY_SUID = bytes.fromhex('acf317f8060854e0')
FAST = 20  # IBM keytool's own count, cheap enough for unit tests


def utf(text):
    raw = text.encode('ascii')
    return struct.pack('>H', len(raw)) + raw


def ref(handle):
    return b'\x71' + struct.pack('>I', 0x7E0000 + handle)


def byte_array_class():
    return b'\x72' + utf('[B') + BYTE_ARRAY_SUID + b'\x02\x00\x00' + b'\x78\x70'


def ibm_key_stream(key):
    """A serialized com.ibm.crypto.provider.AESSecretKey, written out from its documented fields."""
    return (b'\xac\xed\x00\x05' + b'\x73'
            + b'\x72' + utf('com.ibm.crypto.provider.AESSecretKey') + AES_SECRET_KEY_SUID + b'\x02' + b'\x00\x01'
            + b'[' + utf('key') + b'\x74' + utf('[B')
            + b'\x78\x70'
            + b'\x75' + byte_array_class() + struct.pack('>I', len(key)) + key)


def ibm_entry(alias, key, password, salt, iterations=FAST, created=1381234567890):
    """One IBM-dialect secret key entry: tag, alias, date, then the serialized SealedObject."""
    der_count = iterations.to_bytes(iterations.bit_length() // 8 + 1, 'big')
    params = b'\x30' + bytes((12 + len(der_count),)) + b'\x04\x08' + salt + b'\x02' + bytes((len(der_count),)) + der_count
    derived_key, iv = reference_derive(password.encode('ascii'), salt, iterations)
    content = triple_des(derived_key, iv, pkcs5(ibm_key_stream(key)), encrypt=True)
    sealed = (b'\xac\xed\x00\x05' + b'\x73'
              + b'\x72' + utf('javax.crypto.SealedObject') + SEALED_OBJECT_SUID + b'\x02' + b'\x00\x04'
              + b'[' + utf('encodedParams') + b'\x74' + utf('[B')                 # handle 1: "[B"
              + b'[' + utf('encryptedContent') + ref(1)
              + b'L' + utf('paramsAlg') + b'\x74' + utf('Ljava/lang/String;')     # handle 2
              + b'L' + utf('sealAlg') + ref(2)
              + b'\x78\x70'                                                       # no annotations, no superclass
              + b'\x75' + byte_array_class() + struct.pack('>I', len(params)) + params   # handles 3 object, 4 [B class
              + b'\x75' + ref(4) + struct.pack('>I', len(content)) + content
              + b'\x74' + utf('PBE') + b'\x74' + utf('PBEWithMD5AndTripleDES'))
    return entry_header(alias, created) + sealed


def ibm_store(entries, store_password):
    return store_bytes(entries, password=store_password)


# --- reading what IBM's keytool writes -------------------------------------------------------------

def test_an_ibm_keytool_style_store_is_read_fingerprinted_and_reproduced():
    """The shape of IBM keytool's own file: AES-128, 20 iterations, key password != store password."""
    key = bytes.fromhex('00112233445566778899aabbccddeeff')
    salt = bytes.fromhex('49340a20c3e9335d')
    data = ibm_store([ibm_entry('gtnkey', key, 'gtnKeyPass', salt)], 'gtnStorePass')
    keystore = jceks.load(data, 'gtnStorePass')
    entry = keystore.get('gtnKey')
    assert entry.dialect == 'ibm' and not entry.is_sunjce
    info = entry.sealed()
    assert (info.class_name, info.params_alg, info.seal_alg) == ('javax.crypto.SealedObject', 'PBE', 'PBEWithMD5AndTripleDES')
    assert (info.salt, info.iteration_count, len(info.ciphertext)) == (salt, 20, 112)
    assert entry.guess_secret_key() == (None, None)  # 128-bit, not a tape data key
    assert jceks.unseal(entry, 'gtnKeyPass') == ('AES', key)
    with pytest.raises(jceks.JceksUnsealError, match='gtnkey'):
        jceks.unseal(entry, 'gtnStorePass')
    again = jceks.seal_secret_key('gtnKey', key, 'gtnKeyPass', 20, created=entry.created, salt=salt, dialect='ibm')
    assert again.body == entry.body
    rebuilt = jceks.new_keystore()
    rebuilt.add(again)
    assert jceks.dump(rebuilt, 'gtnStorePass') == data


def test_our_ibm_entry_equals_the_documented_layout_byte_for_byte():
    key = os.urandom(32)
    salt = bytes.fromhex('0a0b0c0d01020304')
    ours = jceks.seal_secret_key('dca000000000000000001', key, 'ekm-pass', created=1700000000000, salt=salt, dialect='ibm')
    assert ours.body == ibm_entry('dca000000000000000001', key, 'ekm-pass', salt, 20, 1700000000000)
    assert ours.sealed().iteration_count == jceks.IBM_DEFAULT_ITERATION_COUNT == 20


def test_ibm_entry_fields_at_byte_level():
    """Only the salt, the ciphertext and the creation time differ between two entries of the same key."""
    key = os.urandom(32)
    one = jceks.seal_secret_key('k1', key, 'ekm-pass', dialect='ibm', created=1)
    two = jceks.seal_secret_key('k1', key, 'ekm-pass', dialect='ibm', created=2)
    stream = one.body[6 + 2 + 8:]
    assert stream.startswith(b'\xac\xed\x00\x05\x73\x72\x00\x19javax.crypto.SealedObject' + SEALED_OBJECT_SUID + b'\x02\x00\x04')
    names = [b'encodedParams', b'encryptedContent', b'paramsAlg', b'sealAlg']
    positions = [stream.index(name) for name in names]
    assert positions == sorted(positions)
    assert b'SealedObjectForKeyProtector' not in one.body and b'com.sun' not in one.body
    params_at = stream.index(b'\x30\x0d\x04\x08')
    assert stream[params_at - 4:params_at] == struct.pack('>I', 15)
    assert stream[params_at + 12:params_at + 15] == b'\x02\x01\x14'  # INTEGER 20
    assert stream.endswith(b'\x74\x00\x03PBE\x74\x00\x16PBEWithMD5AndTripleDES')
    content_len = struct.unpack('>I', stream[params_at + 15 + 6:params_at + 15 + 10])[0]
    assert content_len == 128  # a 123-byte AESSecretKey stream, PKCS#5-padded
    differing = [i for i, (a, b) in enumerate(zip(one.body, two.body)) if a != b]
    salt_at = 6 + 2 + 8 + params_at + 4
    content_at = 6 + 2 + 8 + params_at + 15 + 10
    date = range(8, 16)
    allowed = set(date) | set(range(salt_at, salt_at + 8)) | set(range(content_at, content_at + 128))
    assert set(differing) <= allowed and len(one.body) == len(two.body)
    salt = one.sealed().salt
    derived_key, iv = reference_derive(b'ekm-pass', salt, 20)
    plaintext = triple_des(derived_key, iv, one.sealed().ciphertext, encrypt=False)
    assert plaintext == pkcs5(ibm_key_stream(key))


def test_round_trip_in_the_ibm_dialect_in_processes():
    keys = [('dca%018x' % n, os.urandom(32)) for n in range(1, 11)]
    entries = jceks.seal_secret_keys(keys, 'ekm-pass', processes=2, dialect='ibm')
    keystore = jceks.new_keystore()
    for entry in entries:
        keystore.add(entry)
    loaded = jceks.load(jceks.dump(keystore, 'store-pass'), 'store-pass')
    assert loaded.dialect() == 'ibm'
    for (alias, key), entry in zip(keys, loaded.entries):
        assert entry.dialect == 'ibm' and entry.sealed().iteration_count == 20
        assert entry.guess_secret_key() == ('AES', 256)
        assert jceks.unseal(entry, 'ekm-pass') == ('AES', key)


def test_any_iteration_count_is_read_and_written():
    key = os.urandom(32)
    salt = bytes.fromhex('1111222233334444')
    data = ibm_store([ibm_entry('k', key, 'pw-123456', salt, iterations=1000)], 'pw-123456')
    entry = jceks.load(data, 'pw-123456').get('k')
    assert entry.sealed().iteration_count == 1000
    assert jceks.unseal(entry, 'pw-123456') == ('AES', key)
    ours = jceks.seal_secret_key('k', key, 'pw-123456', 1000, created=entry.created, salt=salt, dialect='ibm')
    assert ours.body == entry.body


def test_ibm_dialect_only_seals_aes():
    with pytest.raises(jceks.JceksError, match='only known for AES'):
        jceks.seal_secret_key('k', os.urandom(24), 'pw-123456', algorithm='DESede', dialect='ibm')
    with pytest.raises(jceks.JceksError, match='dialect'):
        jceks.seal_secret_key('k', os.urandom(32), 'pw-123456', dialect='oracle')


def test_an_aes_secret_key_is_only_accepted_inside_the_ibm_sealed_object():
    """SunJCE's sealed class around IBM's key class is no dialect a Java runtime writes."""
    key = os.urandom(32)
    sunjce = jceks.seal_secret_key('k', key, 'pw-123456', 20)
    info = sunjce.sealed()
    derived_key, iv = reference_derive(b'pw-123456', info.salt, 20)
    forged = jceks.load(store_bytes([splice_ciphertext(sunjce.body, triple_des(
        derived_key, iv, pkcs5(ibm_key_stream(key)), encrypt=True))])).get('k')
    assert forged.dialect == 'sunjce'
    with pytest.raises(jceks.JceksUnsupportedError, match='com.ibm.crypto.provider.AESSecretKey'):
        jceks.unseal(forged, 'pw-123456')


def test_a_plain_sealed_object_with_other_parameters_is_no_known_dialect():
    key = os.urandom(32)
    body = ibm_entry('k', key, 'pw-123456', bytes.fromhex('0102030405060708'))
    other = body.replace(b'\x74\x00\x03PBE\x74', b'\x74\x00\x03XYZ\x74')
    entry = jceks.load(ibm_store([other], 'x')).get('k')
    assert entry.dialect is None and entry.guess_secret_key() == (None, None)
    with pytest.raises(jceks.JceksUnsupportedError, match='neither'):
        jceks.unseal(entry, 'pw-123456')


def test_wrong_store_password_with_ibm_keys_says_the_password_is_likely_wrong():
    data = ibm_store([ibm_entry('k', os.urandom(32), 'pw-123456', bytes.fromhex('0102030405060708'))], 'pw-123456')
    with pytest.raises(jceks.JceksIntegrityError) as err:
        jceks.load(data, 'other-password')
    assert err.value.likely_cause == 'password'


# --- one keystore, one dialect ---------------------------------------------------------------------

def test_adding_the_other_dialect_is_refused_and_the_bytes_stay():
    ibm = jceks.load(ibm_store([ibm_entry('ibm1', os.urandom(32), 'pw-123456', bytes.fromhex('0102030405060708'))],
                               'pw-123456'), 'pw-123456')
    before = jceks.dump(ibm, 'pw-123456')
    sunjce_entry = jceks.seal_secret_key('new1', os.urandom(32), 'pw-123456', 1000)
    with pytest.raises(jceks.JceksDialectError, match=r"IBM dialect .*ibm1.*SunJCE dialect") as err:
        ibm.add(sunjce_entry)
    assert 'Nothing was changed' in str(err.value)
    assert ibm.aliases() == ['ibm1'] and 'new1' not in ibm
    assert jceks.dump(ibm, 'pw-123456') == before
    sunjce = jceks.new_keystore()
    sunjce.add(sunjce_entry)
    with pytest.raises(jceks.JceksDialectError, match=r"SunJCE dialect .*new1.*IBM dialect"):
        sunjce.add(jceks.seal_secret_key('ibm2', os.urandom(32), 'pw-123456', dialect='ibm'))
    assert sunjce.dialect() == 'sunjce' and ibm.dialect() == 'ibm' and jceks.new_keystore().dialect() is None


def test_a_keystore_that_already_mixes_dialects_says_so():
    mixed = jceks.new_keystore()
    mixed.entries.append(jceks.seal_secret_key('a', os.urandom(32), 'pw-123456', 1000))
    mixed.entries.append(jceks.seal_secret_key('b', os.urandom(32), 'pw-123456', dialect='ibm'))
    assert mixed.secret_dialects() == {'sunjce': ['a'], 'ibm': ['b']}
    with pytest.raises(jceks.JceksDialectError, match='both dialects'):
        mixed.dialect()
    with pytest.raises(jceks.JceksDialectError):
        mixed.add(jceks.seal_secret_key('c', os.urandom(32), 'pw-123456', dialect='ibm'))


# --- issue 11 items in the engine ----------------------------------------------------------------------

def test_the_alias_index_follows_an_in_place_replacement():
    keystore = jceks.new_keystore()
    keystore.add(jceks.seal_secret_key('old', os.urandom(32), 'pw-123456', 1))
    assert keystore.get('old') is not None
    replacement = jceks.seal_secret_key('new', os.urandom(32), 'pw-123456', 1)
    keystore.entries[0] = replacement
    assert keystore.get('old') is None and keystore.get('NEW') is replacement
    assert 'new' in keystore and 'old' not in keystore
    keystore.entries = [jceks.seal_secret_key('third', os.urandom(32), 'pw-123456', 1, dialect='ibm')]
    assert keystore.get('new') is None and keystore.dialect() == 'ibm'
    del keystore.entries[0]
    assert keystore.get('third') is None and keystore.dialect() is None


def test_a_batch_that_cannot_use_processes_says_so(mocker):
    import concurrent.futures
    mocker.patch.object(concurrent.futures, 'ProcessPoolExecutor', side_effect=OSError('no processes here'))
    told = []
    keys = [('k%02d' % n, os.urandom(32)) for n in range(10)]
    entries = jceks.seal_secret_keys(keys, 'pw-123456', iteration_count=1, processes=2, warn=told.append, dialect='ibm')
    assert len(told) == 1 and 'one process' in told[0] and 'no processes here' in told[0]
    assert [jceks.unseal(e, 'pw-123456')[1] for e in entries] == [key for dummy, key in keys]


def test_padding_is_checked_on_unseal():
    entry = jceks.seal_secret_key('k', os.urandom(32), 'pw-123456', 1, dialect='ibm')
    info = entry.sealed()
    derived_key, iv = reference_derive(b'pw-123456', info.salt, 1)
    plain = triple_des(derived_key, iv, info.ciphertext, encrypt=False)
    assert plain.endswith(b'\x05' * 5)
    bad = triple_des(derived_key, iv, plain[:-1] + b'\x09', encrypt=True)
    forged = jceks.Entry('k', 3, entry.created, entry.body.replace(info.ciphertext, bad))
    with pytest.raises(jceks.JceksUnsealError):
        jceks.unseal(forged, 'pw-123456')


def test_fingerprint_is_the_same_in_both_dialects():
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _keystore
    key = os.urandom(32)
    a = jceks.seal_secret_key('k', key, 'pw-123456', 1000)
    b = jceks.seal_secret_key('k', key, 'pw-123456', dialect='ibm')
    prints = {_keystore.fingerprint(jceks.unseal(e, 'pw-123456')[1]) for e in (a, b)}
    assert len(prints) == 1 and hashlib.sha256(a.body).hexdigest() != hashlib.sha256(b.body).hexdigest()
