# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which replaced-file copies may go; the backup module's use of it is tested with the module."""
from __future__ import annotations

import os

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _copies, _files, _jceks

PW = 'copies-pass'


def store(*entries):
    ks = _jceks.new_keystore()
    for entry in entries:
        ks.add(entry)
    return ks


def sealed(alias):
    return _jceks.seal_secret_key(alias, _jceks.generate_aes_key(), PW, iteration_count=10)


def write(path, ks):
    path.write_bytes(_jceks.dump(ks, PW))
    return str(path)


def test_copies_of_finds_both_forms_newest_first(tmp_path):
    target = tmp_path / 'EKMKeys.jck'
    target.write_bytes(b'x')
    names = ['EKMKeys.jck.20260101T000000000001Z.bak', 'EKMKeys.jck.20260301T000000000000Z.bak',
             'EKMKeys.jck.77.2026-02-01@00:00:00~', 'EKMKeys.jck.bak', 'EKMKeys.jck.20260101T000000000001Z.bak.tmp',
             'Other.jck.20260401T000000000000Z.bak']
    for name in names:
        (tmp_path / name).write_bytes(b'c')
    found = [os.path.basename(p) for p in _copies.copies_of(str(target))]
    assert found == ['EKMKeys.jck.20260301T000000000000Z.bak', 'EKMKeys.jck.77.2026-02-01@00:00:00~',
                     'EKMKeys.jck.20260101T000000000001Z.bak']


def test_a_real_backup_copy_is_found(tmp_path):
    target = tmp_path / 'KeyManagerConfig.properties'
    target.write_bytes(b'a=1\n')
    with _files.DirLock(str(target)):
        copy = _files.backup_copy(str(target))
    assert _copies.copies_of(str(target)) == [copy]


def test_covered_needs_every_entry_byte_for_byte_in_both(tmp_path):
    a, b = sealed('a'), sealed('b')
    copy = write(tmp_path / 'copy', store(a, b))
    assert _copies.keystore_copy_covered(copy, store(a, b, sealed('c')), store(a, b))
    # Missing from the backup set: the key is only in the current keystore and the copy.
    assert not _copies.keystore_copy_covered(copy, store(a, b), store(a))
    # Missing from the current keystore (a restore gave it up): it is only in the copy and the set.
    assert not _copies.keystore_copy_covered(copy, store(a), store(a, b))
    # Same alias, other bytes (another key, or the same key sealed again) is not proof enough.
    assert not _copies.keystore_copy_covered(copy, store(a, sealed('b')), store(a, b))
    (tmp_path / 'junk').write_bytes(b'junk')
    assert not _copies.keystore_copy_covered(str(tmp_path / 'junk'), store(a, b), store(a, b))


def test_prune_keeps_the_newest_and_what_may_not_go(tmp_path):
    target = tmp_path / 'f'
    target.write_bytes(b'x')
    made = []
    for n in range(5):
        made.append(str(tmp_path / ('f.2026010%dT000000000000Z.bak' % (n + 1))))
        with open(made[-1], 'wb') as out:
            out.write(b'%d' % n)
    removed, kept = _copies.prune(str(target), 2, removable=lambda copy: not copy.endswith('2T000000000000Z.bak'),
                                  check_mode=True)
    assert removed == [made[2], made[0]] and kept == [made[1]] and all(os.path.exists(p) for p in made)
    removed, kept = _copies.prune(str(target), 2, removable=lambda copy: not copy.endswith('2T000000000000Z.bak'))
    assert sorted(os.listdir(tmp_path)) == sorted(['f'] + [os.path.basename(p) for p in (made[1], made[3], made[4])])
    assert _copies.prune(str(target), None) == ([], [])
