# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in for the host's keytool in unit tests: ``-genseckey`` and ``-importkeystore`` PKCS12 -> JCEKS.

It reads passwords from the environment as keytool's ``:env`` options do, and seals keys at a
low iteration count. The interop tests run the real keytool.
"""
from __future__ import annotations

import os
import stat
import tempfile

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore, _pkcs12

FAST = 1000


def private_tempdir(tmp_path, monkeypatch):
    """Send the temporary directories of the code under test to ``tmp_path/tmp``, so that leftovers can be seen."""
    where = tmp_path / 'tmp'
    where.mkdir()
    monkeypatch.setattr(tempfile, 'tempdir', str(where))
    return where


def _arg(argv, name):
    return argv[argv.index(name) + 1]


def _load_or_new(path, password):
    if os.path.exists(path):
        with open(path, 'rb') as f:
            return _jceks.load(f.read(), password)
    return _jceks.new_keystore()


class KeytoolStandin:
    """Call it as keytool's runner: ``(argv, env) -> (rc, output)``.

    ``pkcs12=False`` acts like a JRE whose keytool cannot read PKCS#12 secret keys; ``fail_when``
    makes an import fail whose destination file name contains that text.
    """

    def __init__(self, pkcs12=True, fail_when=None):
        self.pkcs12 = pkcs12
        self.fail_when = fail_when
        self.calls = []
        self.sources = []   # (file mode, directory mode, entries) of every PKCS#12 file seen

    def keytool(self):
        return _keystore.Keytool('/bin/true', run=self)

    def __call__(self, argv, env):
        self.calls.append((list(argv), dict(env)))
        if argv[1] == '-genseckey':
            return self._genseckey(argv, env)
        if argv[1] == '-importkeystore':
            return self._import(argv, env)
        return 1, 'keytool error: unexpected command %s' % argv[1]

    def _genseckey(self, argv, env):
        path = _arg(argv, '-keystore')
        store = _load_or_new(path, env[_arg(argv, '-storepass:env')])
        store.add(_jceks.seal_secret_key(_arg(argv, '-alias'), os.urandom(32), env[_arg(argv, '-keypass:env')], FAST))
        with open(path, 'wb') as f:
            f.write(_jceks.dump(store, env[_arg(argv, '-storepass:env')]))
        return 0, 'Generated 256-bit AES secret key'

    def _import(self, argv, env):
        source, dest = _arg(argv, '-srckeystore'), _arg(argv, '-destkeystore')
        with open(source, 'rb') as f:
            data = f.read()
        keys = _pkcs12.read_secret_keys(data, env[_arg(argv, '-srcstorepass:env')]) if self.pkcs12 else []
        self.sources.append((stat.S_IMODE(os.stat(source).st_mode), stat.S_IMODE(os.stat(os.path.dirname(source)).st_mode),
                             len(keys)))
        if not self.pkcs12:
            return 1, 'keytool error: java.security.KeyStoreException: secret key entries are not supported in PKCS12'
        if self.fail_when and self.fail_when in os.path.basename(dest):
            return 1, 'keytool error: java.io.IOException: No space left on device'
        store = _load_or_new(dest, env[_arg(argv, '-deststorepass:env')])
        items = [(alias, key) for alias, dummy, key in keys]
        for entry in _jceks.seal_secret_keys(items, env[_arg(argv, '-destkeypass:env')], FAST, processes=1):
            store.add(entry)
        with open(dest, 'wb') as f:
            f.write(_jceks.dump(store, env[_arg(argv, '-deststorepass:env')]))
        return 0, 'Import command completed: %d entries successfully imported, 0 entries failed or cancelled' % len(keys)
