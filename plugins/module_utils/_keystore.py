# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Keystore inventory, fingerprints, the one key comparison, dialects and the two ways of adding keys.

Everything here works on aliases, counts and hashes. Key bytes exist only inside
``fingerprint()`` callers and the sealing step, and never leave this process: results,
diffs and errors name aliases, never key material. (Python cannot wipe them from memory;
they live until the garbage collector reuses the space, like every other Python object.)
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import os
import shutil
import tempfile

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _jceks
from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import compress

FINGERPRINT_LABEL = b'tapecrypt.ekm key fingerprint v1'
KIND_NAMES = {'secret': 'SecretKeyEntry', 'private': 'PrivateKeyEntry', 'trusted': 'trustedCertEntry'}
# How many aliases an error message names before it says "and N more".
NAMED_IN_ERRORS = 20
# At most this many new keys per run: sealing them holds the keystore's lock, and a typo in a range
# (count: 1000000) must not seal a million keys. Larger additions are several runs, in chunks.
MAX_NEW_KEYS = 100000


class KeystoreError(Exception):
    """A domain error; the message is a complete sentence for ``fail_json``."""


def fingerprint(key):
    """Compare keys across servers without revealing them: a PRF output under a fixed label."""
    return hmac.new(key, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]


def name_aliases(aliases, limit=NAMED_IN_ERRORS):
    """A short, readable list of aliases for messages: ranges compressed, long lists cut."""
    items = compress(aliases)
    if len(items) > limit:
        return '%s and %d more' % (', '.join(items[:limit]), len(items) - limit)
    return ', '.join(items)


def iso_time(ms):
    return datetime.datetime.fromtimestamp(ms / 1000.0, tz=datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')[:-4] + 'Z'


def digest(keystore):
    """SHA-256 over the sorted ``alias:entry_sha256`` lines: equal digests mean byte-equal entries."""
    h = hashlib.sha256()
    for alias, sha in sorted((e.alias.lower(), e.sha256) for e in keystore.entries):
        h.update(('%s:%s\n' % (alias, sha)).encode('utf-8'))
    return h.hexdigest()


def read(path, password=None):
    """Load a keystore file; ``(None, None)`` when it does not exist.

    A wrong password, a truncated or altered file, anything but a regular file (a FIFO, a device)
    all raise ``KeystoreError`` naming the path.
    """
    try:
        data = _files.read_bytes(path)
    except _files.FileError as exc:
        raise KeystoreError(str(exc)) from exc
    if data is None:
        return None, None
    try:
        return _jceks.load(data, password), data
    except _jceks.JceksError as exc:
        raise KeystoreError('Keystore %s: %s' % (path, exc))


def entry_info(entry, key_password=None, with_fingerprint=False):
    """One inventory row. Decrypts only when a fingerprint is asked for."""
    info = {
        'alias': entry.alias,
        'kind': entry.kind,
        'created': iso_time(entry.created),
        'entry_sha256': entry.sha256,
        'dialect': entry.dialect,
        'algorithm': None,
        'size': None,
    }
    if entry.kind == 'secret':
        if with_fingerprint:
            algorithm, key = _jceks.unseal(entry, key_password)
            info['algorithm'] = algorithm
            info['size'] = len(key) * 8
            info['fingerprint'] = fingerprint(key)
        else:
            info['algorithm'], info['size'] = entry.guess_secret_key()
    return info


def dialect_summary(keystore):
    """``sunjce``, ``ibm``, ``mixed`` (both: no Java runtime reads all of it) or None (no key of either)."""
    known = [d for d in keystore.secret_dialects() if d is not None]
    if len(known) > 1:
        return 'mixed'
    return known[0] if known else None


def inventory(keystore, path=None, data=None, fingerprints=False, key_password=None, with_entries=True):
    """The ``keystore`` result of ``keystore_info``; shaped for ``json_query``."""
    entries = [entry_info(e, key_password, fingerprints) for e in keystore.entries] if with_entries else []
    secret = [e.alias for e in keystore.entries if e.kind == 'secret']
    return {
        'path': path,
        'exists': True,
        'sha256': hashlib.sha256(data).hexdigest() if data is not None else None,
        'type': 'JKS' if keystore.magic == 0xFEEDFEED else 'JCEKS',
        'dialect': dialect_summary(keystore),
        'count': len(keystore.entries),
        'ranges': compress(secret),
        'digest': digest(keystore),
        'newest_created': iso_time(max(e.created for e in keystore.entries)) if keystore.entries else None,
        'entries': entries,
    }


def check_existing(keystore, aliases, backend='python'):
    """Every requested alias that exists must be a 256-bit AES secret key.

    Judged from the entry's structure without decrypting (an AES-256 key of either dialect
    always seals to the same length), so a no-change run over thousands of keys stays fast.
    Entries sealed in a layout neither dialect writes cannot be judged that way: the python
    backend refuses them and names ``backend: keytool``; the keytool backend accepts them,
    since the host's JRE made them.
    """
    wrong, foreign = [], []
    for alias in aliases:
        entry = keystore.get(alias)
        if entry is None:
            continue
        if entry.kind != 'secret':
            wrong.append('%s (%s)' % (entry.alias, KIND_NAMES.get(entry.kind, entry.kind)))
        elif entry.dialect is None:
            foreign.append(entry.alias)
        elif entry.guess_secret_key() != ('AES', 256):
            wrong.append('%s (a secret key that is not 256-bit AES)' % entry.alias)
    if wrong:
        raise KeystoreError('These aliases exist but are not 256-bit AES secret keys, so they cannot serve as tape data keys: %s. '
                            'Nothing was changed; choose other aliases or ranges.' % ', '.join(wrong[:NAMED_IN_ERRORS]))
    if foreign and backend == 'python':
        raise KeystoreError('These entries were sealed in a layout that neither OpenJDK\'s nor IBM\'s keytool writes, so the python '
                            'backend cannot check or extend them: %s. Use backend: keytool with the JRE that wrote them. '
                            'Nothing was changed.' % name_aliases(foreign))


def resolve_dialect(keystore, requested='auto'):
    """The dialect new keys get: the one of the keys already in the keystore, else ``requested`` (auto: sunjce).

    Refuses a keystore that already mixes both dialects, and a requested dialect that differs
    from the keys already there; the message names the aliases.
    """
    try:
        existing = keystore.dialect()
    except _jceks.JceksDialectError as exc:
        raise KeystoreError(str(exc))
    if requested in (None, 'auto'):
        return existing or _jceks.DIALECT_SUNJCE
    if existing is not None and existing != requested:
        aliases = keystore.secret_dialects()[existing]
        raise KeystoreError(
            'dialect is %s, but the keystore\'s keys are in the %s (%s). A Java runtime reads only one of the two, so '
            'keys of both in one keystore would make some unreadable; nothing was changed. Use dialect: auto (or %s) '
            'to add keys in the dialect already there.'
            % (requested, _jceks.DIALECT_TITLES[existing], name_aliases(aliases), existing))
    return requested


def default_iteration_count(keystore, dialect):
    """The iteration count most of the keystore's keys of ``dialect`` use; else that dialect's keytool default."""
    counts = {}
    for entry in keystore.entries:
        if entry.tag == _jceks.TAG_SECRET_KEY and entry.dialect == dialect:
            count = entry.sealed().iteration_count
            counts[count] = counts.get(count, 0) + 1
    if not counts:
        return _jceks.DEFAULT_ITERATIONS[dialect]
    return max(counts, key=lambda c: (counts[c], c))


def new_entries(aliases, key_password, iteration_count, processes=None, dialect=_jceks.DIALECT_SUNJCE, warn=None):
    """Fresh random AES-256 keys, sealed in ``dialect`` (parallel: the PBE loop is the cost)."""
    items = [(a, _jceks.generate_aes_key()) for a in aliases]
    return _jceks.seal_secret_keys(items, key_password, iteration_count, processes=processes, dialect=dialect, warn=warn)


def add_python(keystore, aliases, password, key_password, iteration_count, processes=None, dialect=_jceks.DIALECT_SUNJCE,
               warn=None):
    """New file bytes holding every old entry byte for byte plus the new keys (``keystore`` is extended).

    ``Keystore.add()`` refuses keys of a dialect other than the one already there. ``dump()``
    parses its own output again before returning it, so a file Java could not read never reaches
    the disk.
    """
    for entry in new_entries(aliases, key_password, iteration_count, processes, dialect, warn):
        keystore.add(entry)
    return _jceks.dump(keystore, password)


def module_runner(module):
    """Start keytool through ``module.run_command`` (ansible-core's way for modules): ``run(argv, env)`` returns the
    exit status and stdout followed by stderr. ``env`` is laid over a copy of the module's environment."""
    def run(argv, env):
        rc, out, err = module.run_command(argv, environ_update=env, errors='surrogate_or_replace')
        return rc, out + err
    return run


class Keytool:
    """The host's own keytool, for EKM hosts whose JRE cannot read SunJCE entries.

    Passwords travel in the environment (``-storepass:env``), never on the command line,
    and ``LANG=C`` keeps messages parseable.
    """

    def __init__(self, keytool_path=None, java_home=None, run=None):
        if keytool_path:
            self.path = keytool_path
        elif java_home:
            self.path = os.path.join(java_home, 'bin', 'keytool')
        else:
            self.path = shutil.which('keytool')
        if not self.path or not os.access(self.path, os.X_OK):
            raise KeystoreError('keytool was not found%s; set keytool_path or java_home to the JRE that EKM runs on.'
                                % (' at %s' % self.path if self.path else ' on PATH'))
        if run is None:
            raise KeystoreError('internal error: Keytool needs a runner (module_runner(module) in a module)')
        self._run = run

    def call(self, args, secrets):
        env = {k: v for k, v in os.environ.items() if not k.startswith('TAPECRYPT_')}
        env.update({'LANG': 'C', 'LC_ALL': 'C'})
        env.update(secrets)
        rc, out = self._run([self.path] + args, env)
        if rc != 0:
            for value in secrets.values():
                if value:
                    out = out.replace(value, '********')
            raise KeystoreError('keytool %s failed (rc=%d): %s' % (args[0], rc, ' '.join(out.split())[:500]))
        return out

    def genseckey(self, path, alias, password, key_password):
        self.call(['-genseckey', '-alias', alias, '-keyalg', 'AES', '-keysize', '256', '-storetype', 'JCEKS',
                   '-keystore', path, '-storepass:env', 'TAPECRYPT_SP', '-keypass:env', 'TAPECRYPT_KP', '-noprompt'],
                  {'TAPECRYPT_SP': password, 'TAPECRYPT_KP': key_password})

    def verify(self, path, password, key_password, aliases, workdir=None):
        """Make keytool decrypt every entry by copying it into a throw-away store.

        With one password for store and keys (what EKM uses) a single ``-importkeystore`` copies
        everything; otherwise each of ``aliases`` is copied on its own with its key password. The
        store is made in ``workdir`` (the caller's private directory) or a private temporary one.
        """
        with contextlib.ExitStack() as stack:
            if workdir is None:
                workdir = tempfile.mkdtemp(prefix='tapecrypt-verify-')
                stack.callback(shutil.rmtree, workdir, ignore_errors=True)
            dest = os.path.join(workdir, 'verify.p12')
            common = ['-srckeystore', path, '-srcstoretype', 'JCEKS', '-srcstorepass:env', 'TAPECRYPT_SP',
                      '-destkeystore', dest, '-deststoretype', 'PKCS12', '-deststorepass:env', 'TAPECRYPT_SP', '-noprompt']
            secrets = {'TAPECRYPT_SP': password, 'TAPECRYPT_KP': key_password}
            if key_password == password:
                self.call(['-importkeystore'] + common, secrets)
            else:
                for alias in aliases:
                    self.call(['-importkeystore'] + common + ['-srcalias', alias, '-srckeypass:env', 'TAPECRYPT_KP',
                                                              '-destkeypass:env', 'TAPECRYPT_SP'], secrets)


def add_keytool(keytool, path, data, aliases, password, key_password):
    """Let keytool add the keys to a private copy; return the new bytes after checking nothing was lost."""
    # Beside the keystore, under its lock (see _files.private_workdir); the copy is 0600 from its creation.
    with _files.private_workdir(path, 'keytool') as workdir:
        work = os.path.join(workdir, os.path.basename(path) or 'keystore.jck')
        if data is not None:
            _files.create_file(work, data)
        for alias in aliases:
            keytool.genseckey(work, alias, password, key_password)
        with open(work, 'rb') as f:
            new = f.read()
    before = _jceks.load(data, password) if data is not None else _jceks.new_keystore()
    after = _jceks.load(new, password)
    lost = [e.alias for e in before.entries if after.get(e.alias) is None]
    missing = [a for a in aliases if after.get(a) is None]
    if lost or missing:
        raise KeystoreError('keytool did not produce the expected keystore (lost: %s; not added: %s); nothing was changed.'
                            % (name_aliases(lost) or 'none', name_aliases(missing) or 'none'))
    return new


# ---------------------------------------------------------------------------------------------
# The one key comparison: same key under the same alias?

SAME = 'same'
DIFFERENT = 'different'
CANNOT_COMPARE = 'cannot_compare'
NEEDS_FINGERPRINTS = 'needs_fingerprints'


class KeySide:
    """One side of a key comparison: the entry's kind, the hash of its bytes and its key's fingerprint.

    Built from an entry (``KeySide.of_entry``), the fingerprint is computed when first needed and an
    entry that cannot be decrypted records why. Built from values (the sync compares entry lists
    reported by two hosts), the fingerprint is whatever the caller knows: None until it asks.
    """

    __slots__ = ('kind', 'sha256', '_fingerprint', 'error', '_entry', '_key_password')

    def __init__(self, kind, sha256, fingerprint=None, error=None):
        self.kind = kind
        self.sha256 = sha256
        self._fingerprint = fingerprint
        self.error = error
        self._entry = None
        self._key_password = None

    @classmethod
    def of_entry(cls, entry, key_password=None):
        side = cls(entry.kind, entry.sha256)
        side._entry = entry
        side._key_password = key_password
        return side

    @property
    def can_decrypt(self):
        return self._entry is not None

    def fingerprint(self):
        """The key's fingerprint, or None (then ``error`` says why when decrypting failed)."""
        if self._fingerprint is None and self.error is None and self._entry is not None and self.kind == 'secret':
            if self._key_password is None:
                self.error = 'no key password was given to decrypt it'
                return None
            try:
                dummy, key = _jceks.unseal(self._entry, self._key_password)
            except _jceks.JceksError as exc:
                self.error = str(exc)
            else:
                self._fingerprint = fingerprint(key)
        return self._fingerprint


def same_key(first, second):
    """Whether two entries under one alias hold the same key: ``(verdict, reason)``; never a guess.

    - SAME: the entries are byte-identical, or both are secret keys (of either dialect) with equal
      fingerprints.
    - DIFFERENT: the entries are of different kinds, or both keys were decrypted and differ.
    - CANNOT_COMPARE: a key could not be decrypted (``reason`` says why), or the entries are key
      pairs or certificates whose bytes differ (this collection compares secret keys only).
    - NEEDS_FINGERPRINTS: both are secret keys with different bytes and a side built from values
      has no fingerprint yet; the caller fetches fingerprints and asks again.
    """
    if first.sha256 == second.sha256:
        return SAME, None
    if first.kind != second.kind:
        return DIFFERENT, 'a %s entry on one side, a %s entry on the other' % (first.kind, second.kind)
    if first.kind != 'secret':
        return CANNOT_COMPARE, '%s entries whose bytes differ are not compared by content' % KIND_NAMES.get(first.kind, first.kind)
    prints = []
    for side in (first, second):
        value = side.fingerprint()
        if value is None:
            if side.error is not None:
                return CANNOT_COMPARE, side.error
            if not side.can_decrypt:
                return NEEDS_FINGERPRINTS, None
            return CANNOT_COMPARE, 'its key could not be read'
        prints.append(value)
    if hmac.compare_digest(prints[0], prints[1]):
        return SAME, None
    return DIFFERENT, 'the keys differ'


def compare(primary, redundant, primary_key_password=None, redundant_key_password=None):
    """The subset rule: every redundant alias must exist on the primary with the same key.

    Returns ``(missing, conflicts)``: aliases the redundant lacks, and aliases whose key differs
    (or that the primary does not have at all). Decided by same_key(); an alias whose keys cannot
    be compared raises KeystoreError naming it.
    """
    missing = [e.alias for e in primary.entries if redundant.get(e.alias) is None]
    conflicts, unknown = [], []
    for entry in redundant.entries:
        other = primary.get(entry.alias)
        if other is None:
            conflicts.append(entry.alias)
            continue
        verdict, reason = same_key(KeySide.of_entry(other, primary_key_password), KeySide.of_entry(entry, redundant_key_password))
        if verdict == DIFFERENT:
            conflicts.append(entry.alias)
        elif verdict != SAME:
            unknown.append('%s (%s)' % (entry.alias, reason))
    if unknown:
        raise KeystoreError('Cannot compare the keys under these aliases between the servers: %s'
                            % '; '.join(unknown[:NAMED_IN_ERRORS]))
    return missing, conflicts
