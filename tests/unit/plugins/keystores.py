# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one way tests make a JCEKS keystore file of EKM-style aliases (``dca`` + 18 hex digits)."""
from __future__ import annotations

import collections

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks

FAST = 1000  # PBE iterations in tests: the default count is exercised by the keystore module's own tests

Written = collections.namedtuple('Written', 'keystore data')


def alias(n, prefix='dca'):
    return '%s%018x' % (prefix, n)


def write_keystore(path, numbers, password, keys=None, prefix='dca', iterations=FAST, existing=None):
    """Write a keystore holding ``existing`` (a keystore file, read with ``password``) plus one fresh AES key per
    counter in ``numbers``; ``keys`` (alias -> bytes) pins some of them. Returns the keystore and its bytes."""
    ks = _jceks.new_keystore()
    if existing:
        with open(existing, 'rb') as f:
            ks = _jceks.load(f.read(), password)
    for n in numbers:
        name = alias(n, prefix)
        key = keys[name] if keys and name in keys else _jceks.generate_aes_key()
        ks.add(_jceks.seal_secret_key(name, key, password, iteration_count=iterations))
    data = _jceks.dump(ks, password)
    with open(path, 'wb') as f:
        f.write(data)
    return Written(ks, data)
