# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The keytool backend at scale: the host's own JRE seals a whole range in one JVM run per part.

``keytool -genseckey`` makes one key per JVM start, about half a second each. Instead, this module
writes the new random keys into a PKCS#12 file (see ``_pkcs12``) and has the host's keytool run
``-importkeystore`` into a fresh JCEKS store: one JVM seals every key of that file, with the JRE's
own provider and iteration count. The range is cut into one part per CPU core, each part its own
PKCS#12 file, JVM and JCEKS store, run at the same time; the sealed entries are then taken byte for
byte into the real keystore by the native JCEKS engine, which keeps every existing entry as it is.

Everything temporary lives in a private directory beside the keystore (0700, files 0600, see
``_files.private_workdir``) that is removed whatever happens, and by the next run under the
keystore's lock when this one was killed. The PKCS#12 files are protected by a random one-time password; store and key passwords
reach keytool through its environment (``-storepass:env``), never its command line.

A JRE that cannot import PKCS#12 secret keys (old IBM JREs may not) is detected at run time: when
a batch fails, a one-key probe decides. If the probe fails too, keys are made the old way, one
``-genseckey`` JVM per key; if the probe succeeds, the batch's error stands and nothing changes.
"""

from __future__ import annotations

import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _jceks, _keystore, _pkcs12

# A JVM start costs about as much as sealing a dozen keys: parts smaller than this are not worth one.
MIN_KEYS_PER_JVM = 16
# Each JVM needs its own heap; more than this many at once only competes for memory.
MAX_JVMS = 8
PROBE_ALIAS = 'tapecrypt-probe'

METHOD_BATCH = 'importkeystore'
METHOD_PER_KEY = 'genseckey'


class BatchError(_keystore.KeystoreError):
    """A batch import did not give the expected entries; the probe decides what that means."""


def jvm_count(processes, keys):
    """How many keytool JVMs to run at once for ``keys`` new keys."""
    if processes is None:
        processes = _jceks.usable_cpus()
    return max(1, min(processes, MAX_JVMS, keys // MIN_KEYS_PER_JVM or 1))


def split(aliases, parts):
    """``aliases`` in ``parts`` contiguous slices whose sizes differ by at most one."""
    size, extra = divmod(len(aliases), parts)
    out, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        out.append(aliases[start:end])
        start = end
    return [part for part in out if part]


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0), 0o600)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)


def _import_args(source, dest):
    return ['-importkeystore', '-srckeystore', source, '-srcstoretype', 'PKCS12', '-srcstorepass:env', 'TAPECRYPT_TP',
            '-destkeystore', dest, '-deststoretype', 'JCEKS', '-deststorepass:env', 'TAPECRYPT_SP',
            '-destkeypass:env', 'TAPECRYPT_KP', '-noprompt']


def _sealed_entries(dest, aliases, password):
    """The entries keytool wrote for ``aliases``, in that order; BatchError when any is missing or wrong."""
    try:
        with open(dest, 'rb') as f:
            store = _jceks.load(f.read(), password)
    except (OSError, _jceks.JceksError) as exc:
        raise BatchError('keytool -importkeystore left no readable keystore: %s' % exc)
    wanted = set(a.lower() for a in aliases)
    missing = [a for a in aliases if store.get(a) is None or store.get(a).kind != 'secret']
    extra = [e.alias for e in store.entries if e.alias.lower() not in wanted]
    wrong = [a for a in aliases if a not in missing and store.get(a).is_sunjce and store.get(a).guess_secret_key() != ('AES', 256)]
    if missing or extra or wrong:
        raise BatchError('keytool -importkeystore did not seal the keys as asked (not imported: %s; unexpected: %s; '
                         'not AES-256: %s).' % (_keystore.name_aliases(missing) or 'none', _keystore.name_aliases(extra) or 'none',
                                                _keystore.name_aliases(wrong) or 'none'))
    return [store.get(a) for a in aliases]


def seal_part(keytool, workdir, name, aliases, password, key_password):
    """One JVM run: new random keys for ``aliases`` through a PKCS#12 file into a JCEKS store of their own."""
    transfer = secrets.token_urlsafe(32)
    source = os.path.join(workdir, name + '.p12')
    dest = os.path.join(workdir, name + '.jck')
    _write_private(source, _pkcs12.secret_key_store([(alias, _jceks.generate_aes_key()) for alias in aliases], transfer))
    try:
        keytool.call(_import_args(source, dest), {'TAPECRYPT_TP': transfer, 'TAPECRYPT_SP': password, 'TAPECRYPT_KP': key_password})
    except _keystore.KeystoreError as exc:
        raise BatchError(str(exc))
    finally:
        # The only file that holds the keys under the one-time password goes first.
        _remove(source)
    return _sealed_entries(dest, aliases, password)


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def seal_batches(keytool, aliases, password, key_password, jvms, beside):
    """Entries for ``aliases`` sealed by the host's keytool, ``jvms`` at once; BatchError if one fails.

    The files keytool works on lie in a private directory beside the keystore ``beside``, under its
    lock (``_files.private_workdir``): a killed run's are removed by the next run.
    """
    parts = split(list(aliases), jvms)
    with _files.private_workdir(beside, 'keytool') as workdir:
        with ThreadPoolExecutor(max_workers=len(parts)) as pool:
            futures = [pool.submit(seal_part, keytool, workdir, 'part%d' % i, part, password, key_password)
                       for i, part in enumerate(parts)]
            results = [future.result() for future in futures]
    return [entry for part in results for entry in part]


def can_import_pkcs12_secret_keys(keytool, password, key_password, beside):
    """The probe: can this keytool import one PKCS#12 secret key into JCEKS? (Files as in seal_batches.)"""
    with _files.private_workdir(beside, 'probe') as workdir:
        try:
            seal_part(keytool, workdir, 'probe', [PROBE_ALIAS], password, key_password)
        except BatchError:
            return False
    return True


def add_keys(keytool, path, keystore, data, aliases, password, key_password, processes=None):
    """Add keys for ``aliases`` with the host's keytool; returns ``(new bytes, keystore, how)``.

    ``keystore`` is the loaded ``data`` (None for a new file). ``how`` says which way keytool
    was used (``method``) and how many JVMs were started (``runs``). Every existing entry is
    kept byte for byte; nothing is written here.
    """
    batch_runs = jvm_count(processes, len(aliases))
    try:
        entries = seal_batches(keytool, aliases, password, key_password, batch_runs, path)
    except BatchError as exc:
        if can_import_pkcs12_secret_keys(keytool, password, key_password, path):
            raise _keystore.KeystoreError('%s Nothing was changed.' % exc)
        new = _keystore.add_keytool(keytool, path, data, aliases, password, key_password)
        how = {'method': METHOD_PER_KEY, 'runs': batch_runs + 1 + len(aliases),
               'reason': 'this keytool cannot import PKCS#12 secret keys (%s)' % exc}
        return new, _jceks.load(new, password), how
    if keystore is None:
        keystore = _jceks.new_keystore()
    for entry in entries:
        keystore.add(entry)
    return _jceks.dump(keystore, password), keystore, {'method': METHOD_BATCH, 'runs': batch_runs}
