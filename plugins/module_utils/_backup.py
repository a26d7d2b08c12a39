# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Verified backup sets of an EKM server's four files, and a restore that cannot lose keys by accident.

A backup set is the directory ``<dest>/<site>/<host>/<YYYYmmddTHHMMSSZ>/`` holding copies of the
keystore, ``KeyManagerConfig.properties``, ``KeyGroups.xml`` and the drive table, plus
``MANIFEST.json``. A set is built in a hidden ``.<name>.partial`` directory, read back from the
destination and checked (hashes, keystore integrity with its password), and only then gets its
manifest and its final name. A directory without a valid manifest is never taken for a set: not
when listing, not when choosing the newest, not when pruning.

The manifest carries an HMAC keyed by the keystore password, so an altered manifest is detected
even where the change is consistent with altered files (a hand-edited hash, a dropped entry).
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import json
import os
import re
import shutil
import stat
import time

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _jceks, _keystore
from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import AliasError, compress, expand

# The kinds of file a backup set holds. The manifest (format 1) stores a file's kind under the key 'role'.
FILE_KINDS = ('keystore', 'config', 'keygroups', 'drivetable')
FILE_TITLES = {
    'keystore': 'keystore',
    'config': 'configuration file',
    'keygroups': 'key-group file',
    'drivetable': 'drive table',
}
# The options that name the EKM files, shared by the backup and restore modules (see file_paths()).
FILE_OPTIONS = dict(
    keystore_path=dict(type='path', required=True, no_log=False),
    config_path=dict(type='path'),
    keygroups_path=dict(type='path'),
    drivetable_path=dict(type='path'),
)
MANIFEST_NAME = 'MANIFEST.json'
MANIFEST_FORMAT = 1
# A staging directory this old cannot belong to a run still in progress (a set is a few files).
STALE_SECONDS = 3600
STAMP_FORMAT = '%Y%m%dT%H%M%SZ'
CREATED_FORMAT = '%Y-%m-%dT%H:%M:%S.%fZ'
SET_NAME_RE = re.compile(r'^[0-9]{8}T[0-9]{6}Z(?:-[0-9]{1,6})?$')
_LEFTOVER_RE = re.compile(r'^\.([0-9]{8}T[0-9]{6}Z(?:-[0-9]{1,6})?)\.(partial|pruning)$')
_HEX64_RE = re.compile(r'^[0-9a-f]{64}$')
_MAC_LABEL = b'tapecrypt.ekm backup manifest v1\x00'


class BackupError(Exception):
    """A domain error; the message is a complete sentence for ``fail_json``."""


def _reason(exc):
    return getattr(exc, 'strerror', None) or str(exc)


def _drop_cache(fd):
    # Ask the kernel to forget its cached pages, so the read-back comes from the device and not
    # from memory. Best effort: not every platform or filesystem honours it.
    advise = getattr(os, 'posix_fadvise', None)
    if advise is not None:
        try:
            advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def _read_back(path):
    # O_NONBLOCK: a FIFO in a set opens without waiting, and is refused below like any file that is not regular.
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_NONBLOCK', 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BackupError('%s is not a regular file' % os.path.basename(path))
        _drop_cache(fd)
        chunks = []
        while True:
            chunk = os.read(fd, 1024 * 1024)
            if not chunk:
                break
            chunks.append(chunk)
        return b''.join(chunks)
    finally:
        os.close(fd)


def file_paths(params):
    """Kind -> path of the EKM files a module's ``FILE_OPTIONS`` name (None for those not given)."""
    return {kind: params['%s_path' % kind] for kind in FILE_KINDS}


def check_label(option, value):
    """``site`` and ``host`` become directory names: one plain path component each."""
    if not isinstance(value, str) or not value or value in ('.', '..') or value.startswith('.') \
            or '/' in value or '\x00' in value or len(value.encode('utf-8')) > 255:
        raise BackupError('%s %r cannot name a backup directory: use one path component that does not start with a dot '
                          '(for example the site label or inventory_hostname).' % (option, value))


def manifest_mac(manifest, password):
    """HMAC-SHA256 over the canonical JSON of the manifest without its ``hmac`` field."""
    body = {k: v for k, v in manifest.items() if k != 'hmac'}
    text = json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=True).encode('ascii')
    key = hashlib.sha256(_MAC_LABEL + password.encode('utf-8')).digest()
    return hmac.new(key, text, hashlib.sha256).hexdigest()


def public_manifest(manifest):
    """The manifest as results show it: the HMAC stays in the file (it is a password-guessing oracle in a log)."""
    return {k: v for k, v in manifest.items() if k != 'hmac'}


def secret_ranges(keystore):
    return compress([e.alias for e in keystore.entries if e.kind == 'secret'])


class SourceFile:
    """One EKM file as read for a backup: its kind, where it lives, its name in the set and its bytes."""

    def __init__(self, kind, path, data):
        self.kind = kind
        self.path = path
        self.name = os.path.basename(os.path.normpath(path))
        self.data = data

    @property
    def present(self):
        return self.data is not None


def read_sources(paths, password):
    """Read the EKM files named by ``paths`` (kind -> path; None for files not backed up).

    The keystore must exist and open with ``password``; the other files may be absent. Returns
    ``(files, keystore)``. The reads happen under the keystore directory's lock, so a
    tapecrypt.ekm task that adds keys at the same moment is seen entirely or not at all.
    """
    if not paths.get('keystore'):
        raise BackupError('keystore_path is required: a backup set without the keystore would not hold the keys.')
    files = []
    names = {}
    for kind in FILE_KINDS:
        path = paths.get(kind)
        if not path:
            continue
        name = os.path.basename(os.path.normpath(path))
        if name == MANIFEST_NAME:
            raise BackupError('%s cannot be backed up under its own name: %s is the name of the set\'s manifest.' % (path, name))
        if name in names:
            other_kind, other_path = names[name]
            raise BackupError('The %s %s and the %s %s have the same file name %s; a backup set keeps files by name, so '
                              'they cannot both be backed up.' % (FILE_TITLES[other_kind], other_path, FILE_TITLES[kind], path, name))
        names[name] = (kind, path)
    try:
        with _files.DirLock(paths['keystore']):
            keystore, ks_data = _keystore.read(paths['keystore'], password)
            if keystore is None:
                raise BackupError('The keystore %s does not exist; there is nothing to back up.' % paths['keystore'])
            for kind in FILE_KINDS:
                path = paths.get(kind)
                if not path:
                    continue
                data = ks_data if kind == 'keystore' else _files.read_bytes(path)
                files.append(SourceFile(kind, path, data))
    except (_keystore.KeystoreError, _files.FileError) as exc:
        raise BackupError('%s Nothing was backed up.' % exc)
    return files, keystore


def content_of(files):
    """What the idempotence check compares: names, kinds, hashes and sizes, and which files are absent."""
    present = {f.name: {'role': f.kind, 'sha256': _files.sha256_bytes(f.data), 'size': len(f.data)}
               for f in files if f.present}
    absent = {f.name: f.kind for f in files if not f.present}
    return present, absent


def content_text(content, count):
    """A diff side for a backup: file names and hashes, the key count; never contents."""
    present, absent = content
    lines = ['%s: %s' % (name, info['sha256']) for name, info in sorted(present.items())]
    lines += ['%s: absent' % name for name in sorted(absent)]
    lines.append('keys: %d' % count)
    return '\n'.join(lines) + '\n'


def manifest_content(manifest):
    present = {name: {'role': info['role'], 'sha256': info['sha256'], 'size': info['size']}
               for name, info in manifest['files'].items()}
    absent = {name: info['role'] for name, info in manifest.get('absent', {}).items()}
    return present, absent


class BackupSet:
    """A directory with a valid, verified manifest."""

    def __init__(self, path, manifest):
        self.path = path
        self.name = os.path.basename(path)
        self.manifest = manifest
        self.created = manifest['created']

    def sort_key(self):
        return (self.created, self.name)


def validate_manifest(manifest, password=None):
    """Raise BackupError(reason) unless ``manifest`` is a complete, verified manifest (and, with a password, unaltered)."""
    if not isinstance(manifest, dict):
        raise BackupError('the manifest is not a JSON object')
    if manifest.get('format') != MANIFEST_FORMAT:
        raise BackupError('the manifest format is %r, not %d' % (manifest.get('format'), MANIFEST_FORMAT))
    if manifest.get('verified') is not True:
        raise BackupError('the manifest does not say the set was verified')
    for field in ('site', 'host', 'created'):
        if not isinstance(manifest.get(field), str):
            raise BackupError('the manifest lacks "%s"' % field)
    try:
        datetime.datetime.strptime(manifest['created'], CREATED_FORMAT)
    except ValueError:
        raise BackupError('the manifest\'s "created" is not a UTC time like 2026-01-31T12:00:00.000000Z')
    files = manifest.get('files')
    if not isinstance(files, dict) or not files:
        raise BackupError('the manifest lists no files')
    kinds = set()
    for name, info in files.items():
        if not name or '/' in name or name in ('.', '..', MANIFEST_NAME) or not isinstance(info, dict):
            raise BackupError('the manifest lists a file with an impossible name %r' % name)
        if info.get('role') not in FILE_KINDS or info['role'] in kinds:
            raise BackupError('the manifest gives %s the role %r' % (name, info.get('role')))
        kinds.add(info['role'])
        if not isinstance(info.get('sha256'), str) or not _HEX64_RE.match(info['sha256']):
            raise BackupError('the manifest has no valid sha256 for %s' % name)
        if not isinstance(info.get('size'), int) or isinstance(info['size'], bool) or info['size'] < 0:
            raise BackupError('the manifest has no valid size for %s' % name)
    absent = manifest.get('absent', {})
    if not isinstance(absent, dict):
        raise BackupError('the manifest\'s "absent" is not an object')
    for name, info in absent.items():
        if not isinstance(info, dict) or info.get('role') not in FILE_KINDS or info['role'] in kinds or name in files:
            raise BackupError('the manifest records %r as absent in an impossible way' % name)
        kinds.add(info['role'])
    ks = manifest.get('keystore')
    if not isinstance(ks, dict) or ks.get('file') not in files or files[ks['file']]['role'] != 'keystore':
        raise BackupError('the manifest does not name the keystore file')
    if not isinstance(ks.get('count'), int) or isinstance(ks['count'], bool) or ks['count'] < 0 \
            or not isinstance(ks.get('digest'), str) or not _HEX64_RE.match(ks['digest']):
        raise BackupError('the manifest has no valid keystore count and digest')
    if password is not None:
        mac = manifest.get('hmac')
        if not isinstance(mac, str) or not hmac.compare_digest(mac, manifest_mac(manifest, password)):
            raise BackupError('the manifest was altered, or it was written with another keystore password')


def _read_set_file(set_path, name):
    """The bytes of the file ``name`` of a set, read back from the device; BackupError when missing or unreadable."""
    try:
        return _read_back(os.path.join(set_path, name))
    except FileNotFoundError:
        raise BackupError('%s is missing' % name)
    except OSError as exc:
        raise BackupError('%s cannot be read: %s' % (name, _reason(exc)))


def read_manifest(set_path, password=None):
    data = _read_set_file(set_path, MANIFEST_NAME)
    try:
        manifest = json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BackupError('%s is not valid JSON (%s)' % (MANIFEST_NAME, exc))
    validate_manifest(manifest, password)
    return manifest


def list_sets(host_dir, password=None):
    """``(sets, invalid)``: the verified sets in ``host_dir``, newest first, and ``(path, reason)`` of set-like
    directories that are not usable sets.

    Cheap enough for every run: manifests are read and checked, files only for presence and size.
    """
    sets, invalid = [], []
    try:
        names = os.listdir(host_dir)
    except FileNotFoundError:
        return sets, invalid
    except OSError as exc:
        raise BackupError('Cannot list the backup directory %s: %s.' % (host_dir, _reason(exc)))
    for name in sorted(names):
        path = os.path.join(host_dir, name)
        if not SET_NAME_RE.match(name) or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            manifest = read_manifest(path, password)
            for fname, info in manifest['files'].items():
                try:
                    size = os.lstat(os.path.join(path, fname)).st_size
                except FileNotFoundError:
                    raise BackupError('%s is missing' % fname)
                if size != info['size']:
                    raise BackupError('%s has %d bytes, the manifest records %d' % (fname, size, info['size']))
        except BackupError as exc:
            invalid.append((path, str(exc)))
            continue
        sets.append(BackupSet(path, manifest))
    sets.sort(key=BackupSet.sort_key, reverse=True)
    return sets, invalid


def verify_files(set_path, manifest):
    """Every file the manifest lists, read back and checked for size and sha256; returns name -> bytes."""
    data = {}
    for name, info in sorted(manifest['files'].items()):
        content = _read_set_file(set_path, name)
        if len(content) != info['size']:
            raise BackupError('%s has %d bytes, the manifest records %d' % (name, len(content), info['size']))
        sha = _files.sha256_bytes(content)
        if sha != info['sha256']:
            raise BackupError('%s has sha256 %s, the manifest records %s: the copy was altered or damaged'
                              % (name, sha, info['sha256']))
        data[name] = content
    return data


def verify_keystore(manifest, data, password):
    """Open the set's keystore copy with ``password`` and check it holds what the manifest says."""
    ks_info = manifest['keystore']
    try:
        keystore = _jceks.load(data[ks_info['file']], password)
    except _jceks.JceksError as exc:
        raise BackupError('its keystore %s does not open with the given password: %s' % (ks_info['file'], exc))
    if len(keystore.entries) != ks_info['count'] or _keystore.digest(keystore) != ks_info['digest']:
        raise BackupError('its keystore %s holds %d entries with digest %s, the manifest records %d entries with digest %s'
                          % (ks_info['file'], len(keystore.entries), _keystore.digest(keystore), ks_info['count'],
                             ks_info['digest']))
    return keystore


def verify_set(set_path, password):
    """The complete check a restore needs: ``(manifest, name -> bytes, keystore)`` or BackupError naming the set."""
    try:
        if not os.path.isdir(set_path):
            raise BackupError('it is not a directory')
        manifest = read_manifest(set_path, None)
        data = verify_files(set_path, manifest)
        keystore = verify_keystore(manifest, data, password)
        # The HMAC last: with a wrong password the keystore check above gives the clearer message.
        validate_manifest(manifest, password)
    except BackupError as exc:
        raise BackupError('The backup set %s cannot be used: %s.' % (set_path, exc))
    return manifest, data, keystore


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _set_name(host_dir, when):
    base = when.strftime(STAMP_FORMAT)
    taken = set(os.listdir(host_dir))
    for n in range(1, 1000):
        name = base if n == 1 else '%s-%d' % (base, n)
        if name not in taken and '.%s.partial' % name not in taken and '.%s.pruning' % name not in taken:
            return name
    raise BackupError('Cannot find a free name for a backup set in %s.' % host_dir)


def _remove_tree(path):
    """Remove a directory tree; whether it is gone (a failure part-way leaves the rest for the next run)."""
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


def remove_leftovers(host_dir, now_ts=None):
    """Remove staging directories of crashed runs (older than STALE_SECONDS) and half-pruned sets."""
    removed = []
    now_ts = time.time() if now_ts is None else now_ts
    for name in sorted(os.listdir(host_dir)):
        match = _LEFTOVER_RE.match(name)
        path = os.path.join(host_dir, name)
        if not match or os.path.islink(path) or not os.path.isdir(path):
            continue
        # A half-pruned set was already chosen for removal; a young partial may be another run's.
        if match.group(2) == 'partial' and now_ts - os.lstat(path).st_mtime < STALE_SECONDS:
            continue
        if _remove_tree(path):
            removed.append(path)
    return removed


def prune(host_dir, sets, keep, protect):
    """Remove the verified sets after the ``keep`` newest, never one whose path is in ``protect``.

    Returns ``(removed set paths, [(set path, leftover path)])``. A set is renamed to
    ``.<name>.pruning`` first, so it stops counting as a set at once; one whose removal then fails
    part-way is not reported as removed but as a leftover, which the next run removes
    (``remove_leftovers``).
    """
    pruned, left = [], []
    if not keep:
        return pruned, left
    for item in sets[keep:]:
        if item.path in protect:
            continue
        doomed = os.path.join(host_dir, '.%s.pruning' % item.name)
        try:
            # Renamed first, so a crash part-way through the removal never leaves a set that looks usable.
            os.rename(item.path, doomed)
            _files.fsync_dir(host_dir)
        except OSError as exc:
            raise BackupError('Cannot remove the old backup set %s: %s.' % (item.path, _reason(exc)))
        if _remove_tree(doomed):
            pruned.append(item.path)
        else:
            left.append((item.path, doomed))
    return pruned, left


def write_set(host_dir, files, keystore, password, site, host, when):
    """Stage, verify and publish one set; returns ``(path, manifest)``. On failure nothing is left behind."""
    name = _set_name(host_dir, when)
    staging = os.path.join(host_dir, '.%s.partial' % name)
    final = os.path.join(host_dir, name)
    try:
        os.mkdir(staging, 0o700)
    except OSError as exc:
        raise BackupError('Cannot create a backup set in %s: %s. No set was made and no old set was removed.'
                          % (host_dir, _reason(exc)))
    try:
        for item in files:
            if item.present:
                _files.create_file(os.path.join(staging, item.name), item.data)
        _files.fsync_dir(staging)
        manifest = {
            'format': MANIFEST_FORMAT,
            'site': site,
            'host': host,
            'created': when.strftime(CREATED_FORMAT),
            'files': {},
            'absent': {},
        }
        for item in files:
            if item.present:
                manifest['files'][item.name] = {'role': item.kind, 'sha256': _files.sha256_bytes(item.data),
                                                'size': len(item.data), 'source': item.path}
            else:
                manifest['absent'][item.name] = {'role': item.kind, 'source': item.path}
        ks_file = [f.name for f in files if f.kind == 'keystore'][0]
        manifest['keystore'] = {'file': ks_file, 'count': len(keystore.entries), 'digest': _keystore.digest(keystore),
                                'ranges': secret_ranges(keystore)}
        # What is on the destination now, read back, must be what was read from the server.
        data = verify_files(staging, manifest)
        verify_keystore(manifest, data, password)
        manifest['verified'] = True
        manifest['hmac'] = manifest_mac(manifest, password)
        text = json.dumps(manifest, indent=2, sort_keys=True).encode('utf-8') + b'\n'
        _files.create_file(os.path.join(staging, MANIFEST_NAME), text)
        _files.fsync_dir(staging)
        if read_manifest(staging, password) != manifest:
            raise BackupError('%s reads back differently from what was written' % MANIFEST_NAME)
        if os.path.lexists(final):
            raise BackupError('%s appeared while the set was being written' % final)
        _files.fault_point('rename')
        os.rename(staging, final)
        _files.fsync_dir(host_dir)
    except (BackupError, OSError) as exc:
        _remove_tree(staging)
        raise BackupError('Writing the backup set %s failed: %s. No set was made and no old set was removed.'
                          % (final, _reason(exc) if isinstance(exc, OSError) else exc))
    return final, manifest


def check_dest(dest, protected):
    if not os.path.isdir(dest):
        raise BackupError('The backup destination %s does not exist or is not a directory; mount or create it first. '
                          'Nothing was backed up.' % dest)
    if not os.access(dest, os.W_OK | os.X_OK):
        raise BackupError('The backup destination %s is not writable by this user. Nothing was backed up.' % dest)
    try:
        _files.ensure_not_inside(dest, protected)
    except _files.FileError as exc:
        raise BackupError('Refusing to back up into %s: %s A backup must not share the fate of the files it protects. '
                          'Nothing was backed up.' % (dest, exc))


def backup(paths, password, dest, site, host, keep=None, protected_paths=(), check_mode=False, now=None):
    """Make a verified backup set unless the newest one already holds the same files.

    ``paths``: kind -> path (``keystore`` required). ``protected_paths``: directories the destination
    must lie outside; the directories of the backed-up files are always among them. Returns the
    module result (without ``changed``'s file-attribute part).
    """
    check_label('site', site)
    check_label('host', host)
    if keep is not None and keep < 1:
        raise BackupError('keep must be at least 1 (the newest set is never removed); got %d.' % keep)
    host_dir = _host_dir(paths, dest, site, host, protected_paths)
    files, keystore = read_sources(paths, password)
    current = content_of(files)
    result = {'changed': False, 'created': False, 'set_path': None, 'manifest': None, 'sets': [], 'pruned': [],
              'invalid_sets': [], 'removed_leftovers': [], 'warnings': [],
              'diff': {'before': '', 'after': content_text(current, len(keystore.entries))}}
    with contextlib.ExitStack() as stack:
        if os.path.isdir(host_dir) or not check_mode:
            _make_dir(host_dir)
            stack.enter_context(_locked(host_dir))
        sets, newest, unchanged = _newest_set(host_dir, password, current, result, check_mode)
        if check_mode:
            return _check_mode_result(result, sets, newest if unchanged else None, keep)
        result['removed_leftovers'] = remove_leftovers(host_dir)
        if unchanged:
            path, manifest = newest.path, newest.manifest
        else:
            path, manifest = write_set(host_dir, files, keystore, password, site, host, (now or _now)())
            result['created'] = result['changed'] = True
            sets = _sets_led_by(host_dir, password, path, result)
        result['pruned'], left = prune(host_dir, sets, keep, {path})
        for set_path, doomed in left:
            result['warnings'].append('The old backup set %s is no longer a usable set, but removing its files failed '
                                      'part-way; what is left (%s) is removed by the next backup run.' % (set_path, doomed))
        gone = set(result['pruned']) | {set_path for set_path, _doomed in left}
        result['changed'] = result['changed'] or bool(gone)
        result['set_path'] = path
        result['manifest'] = public_manifest(manifest)
        result['sets'] = [s.path for s in sets if s.path not in gone]
    return result


def _host_dir(paths, dest, site, host, protected_paths):
    """``<dest>/<site>/<host>``, refused when it lies inside a protected directory or one of the backed-up files'."""
    source_dirs = [os.path.dirname(os.path.abspath(p)) for p in paths.values() if p]
    protected = [p for p in protected_paths if p] + source_dirs
    check_dest(dest, protected)
    host_dir = os.path.join(dest, site, host)
    try:
        _files.ensure_not_inside(host_dir, protected)
    except _files.FileError as exc:
        raise BackupError('Refusing to back up into %s: %s Nothing was backed up.' % (host_dir, exc))
    return host_dir


def _make_dir(host_dir):
    try:
        os.makedirs(host_dir, 0o700, exist_ok=True)
    except OSError as exc:
        raise BackupError('Cannot create the backup directory %s: %s. Nothing was backed up.' % (host_dir, _reason(exc)))


def _newest_set(host_dir, password, current, result, check_mode):
    """``(sets, newest, unchanged)``: the verified sets, the newest, and whether it already holds ``current``."""
    sets, invalid = list_sets(host_dir, password)
    result['invalid_sets'] = [{'path': p, 'reason': r} for p, r in invalid]
    newest = sets[0] if sets else None
    if newest is None:
        return sets, None, False
    result['diff']['before'] = content_text(manifest_content(newest.manifest), newest.manifest['keystore']['count'])
    result['diff']['before_header'] = newest.path
    if manifest_content(newest.manifest) != current:
        return sets, newest, False
    try:
        verify_files(newest.path, newest.manifest)
    except BackupError as exc:
        result['warnings'].append('The newest backup set %s no longer matches its manifest (%s); a new set %s made.'
                                  % (newest.path, exc, 'would be' if check_mode else 'was'))
        return sets, newest, False
    return sets, newest, True


def _check_mode_result(result, sets, kept, keep):
    """What the run would do: a new set unless ``kept`` (the newest, unchanged) serves, and the sets pruned."""
    result['created'] = result['changed'] = kept is None
    if kept is not None:
        result['set_path'] = kept.path
        result['manifest'] = public_manifest(kept.manifest)
        would_keep = sets
    else:
        would_keep = [None] + sets
    result['sets'] = [s.path for s in would_keep if s is not None]
    if keep:
        result['pruned'] = [s.path for s in would_keep[keep:] if s is not None]
        result['changed'] = result['changed'] or bool(result['pruned'])
    return result


def _sets_led_by(host_dir, password, path, result):
    """The verified sets with the one just made first (even if the clock once ran ahead), so pruning never takes it."""
    sets, invalid = list_sets(host_dir, password)
    result['invalid_sets'] = [{'path': p, 'reason': r} for p, r in invalid]
    sets = [s for s in sets if s.path == path] + [s for s in sets if s.path != path]
    if not sets or sets[0].path != path:
        raise BackupError('The new backup set %s does not list as a verified set; no old set was removed.' % path)
    return sets


@contextlib.contextmanager
def _locked(directory):
    try:
        with _files.DirLock(directory):
            yield
    except _files.FileError as exc:
        raise BackupError(str(exc))


# --- restore -------------------------------------------------------------------------------------------------------


def find_set(dest, site, host, which='latest'):
    """The path of set ``which`` (a set name, or ``latest`` for the newest verified one) under ``dest/site/host``.

    The newest is chosen by structure only: when it then fails the complete check, the restore
    stops instead of quietly taking an older set, which may lack keys.
    """
    check_label('site', site)
    check_label('host', host)
    if which != 'latest' and not SET_NAME_RE.match(which or ''):
        raise BackupError('set must be latest or the name of a set directory such as 20260131T120000Z; got %r.' % which)
    host_dir = os.path.join(dest, site, host)
    if not os.path.isdir(host_dir):
        raise BackupError('There are no backups of %s/%s in %s (%s does not exist).' % (site, host, dest, host_dir))
    if which != 'latest':
        return os.path.join(host_dir, which)
    sets, invalid = list_sets(host_dir)
    if not sets:
        detail = '; '.join('%s: %s' % (os.path.basename(p), r) for p, r in invalid[:5])
        raise BackupError('%s holds no verified backup set%s.' % (host_dir, ' (%s)' % detail if detail else ''))
    return sets[0].path


def _structure(data):
    """Entries of a keystore by structure only (no password), or None when it cannot be parsed."""
    try:
        return _jceks.load(data, None)
    except _jceks.JceksError:
        return None


class RestorePlan:
    """What a restore would do, decided before anything is touched."""

    def __init__(self, set_path, manifest):
        self.set_path = set_path
        self.manifest = manifest
        self.files = []          # dicts: kind, name, target, data, sha256, current (bytes or None), change
        self.skipped = []        # names in the set with no target given
        self.not_in_set = []     # targets the set records as absent: left as they are
        self.aliases_lost = []
        self.aliases_replaced = []
        self.aliases_gained = []
        self.before_ranges = None
        self.after_ranges = []
        self.before_count = None
        self.after_count = 0
        self.set_aliases = []    # the secret-key aliases of the set's keystore
        self.current_aliases = []  # add_missing: the secret-key aliases of the current keystore
        self.warnings = []
        # Set when the restore would lose keys without allow_key_loss: the plan is complete, applying it is refused.
        self.refusal = None

    @property
    def changed_names(self):
        return [f['name'] for f in self.files if f['change']]

    @property
    def would_change(self):
        return {f['name']: f['change'] for f in self.files}


def check_set_owner(set_path, manifest, site, host, from_host=None):
    """Refuse a set whose manifest names another site or server than the restore names (BackupError).

    ``host`` is the server being restored; ``from_host`` a partner whose set is restored on purpose.
    """
    owner = from_host or host
    if manifest.get('site') != site or manifest.get('host') != owner:
        partner = '' if from_host else (' To rebuild %s from the set of another server of the same site, name '
                                        'that server in from_host.' % host)
        raise BackupError('The backup set %s is the set of %s/%s (its manifest says so), not of %s/%s; restoring it would '
                          'install that server\'s files and keys here. Nothing was changed.%s'
                          % (set_path, manifest.get('site'), manifest.get('host'), site, owner, partner))


def plan_restore(set_path, targets, password, allow_key_loss=False, owner=None):
    """Verify the set completely and compare it with the current files; touches nothing.

    ``owner``: ``(site, host, from_host)`` the set's manifest must name (``check_set_owner``); with
    a ``from_host`` (a partner's set) keys are never allowed to be lost. A set that cannot be used
    raises BackupError. A restore that would lose keys (without ``allow_key_loss``) still returns
    the plan, so check mode can show it, with ``refusal`` set.
    """
    if not targets.get('keystore'):
        raise BackupError('keystore_path is required: it is where the set\'s keystore is restored to.')
    manifest, data, set_keystore = verify_set(set_path, password)
    if owner is not None:
        check_set_owner(set_path, manifest, *owner)
        allow_key_loss = allow_key_loss and not owner[2]
    plan = RestorePlan(set_path, manifest)
    by_kind = {info['role']: name for name, info in manifest['files'].items()}
    absent_kinds = {info['role']: name for name, info in manifest.get('absent', {}).items()}
    for kind in FILE_KINDS:
        target = targets.get(kind)
        name = by_kind.get(kind)
        if name is None:
            if target and os.path.lexists(target):
                plan.not_in_set.append(target)
                plan.warnings.append('The set records no %s (%s); %s was left as it is.'
                                     % (FILE_TITLES[kind], 'it was absent on the server' if kind in absent_kinds
                                        else 'it was not backed up', target))
        elif not target:
            plan.skipped.append(name)
        else:
            plan.files.append(_planned_file(kind, name, target, data[name], manifest['files'][name]['sha256']))
    plan.after_ranges = secret_ranges(set_keystore)
    plan.after_count = len(set_keystore.entries)
    plan.set_aliases = [e.alias for e in set_keystore.entries if e.kind == 'secret']
    ks_file = [f for f in plan.files if f['kind'] == 'keystore'][0]
    if ks_file['current'] is not None:
        _compare_keystores(plan, ks_file, set_keystore, password, allow_key_loss)
    if plan.refusal and owner is not None and owner[2]:
        plan.refusal += (' With from_host, allow_key_loss does not apply: the set of %s must hold every key of this '
                         'server.' % owner[2])
    return plan


def _planned_file(kind, name, target, data, sha):
    """One file of a restore plan: the set's bytes and what is at ``target`` now."""
    real = os.path.realpath(target)
    if os.path.isdir(real):
        raise BackupError('%s is a directory; give the path of the %s. Nothing was changed.' % (target, FILE_TITLES[kind]))
    if not os.path.isdir(os.path.dirname(real)):
        raise BackupError('The directory of %s does not exist; create it first (owned by the EKM user). Nothing was changed.'
                          % target)
    try:
        current = _files.read_bytes(real)
    except _files.FileError as exc:
        raise BackupError('%s Nothing was changed.' % exc)
    current_sha = _files.sha256_bytes(current) if current is not None else None
    return {'kind': kind, 'name': name, 'target': target, 'real': real, 'data': data, 'sha256': sha,
            'current': current, 'current_sha256': current_sha, 'change': current_sha != sha}


def _compare_keystores(plan, ks_file, set_keystore, password, allow_key_loss):
    """Which keys of the current keystore the set lacks or replaces; a refusal (or warning) when keys would be lost."""
    current = _structure(ks_file['current'])
    if current is None:
        message = ('The current keystore %s cannot be read as a keystore, so it is unknown which keys the restore would '
                   'replace.' % ks_file['target'])
        if not allow_key_loss:
            plan.refusal = ('%s Nothing was changed. Set allow_key_loss: true to restore anyway (keep backup: true so '
                            'the current file is kept as a pre-restore copy).' % message)
        else:
            plan.warnings.append(message)
        return
    plan.before_ranges = secret_ranges(current)
    plan.before_count = len(current.entries)
    lost, replaced, uncompared = _key_changes(current, set_keystore, password)
    plan.aliases_lost = compress(lost)
    plan.aliases_replaced = compress(replaced)
    plan.aliases_gained = compress([e.alias for e in set_keystore.entries if current.get(e.alias) is None])
    if (lost or replaced or uncompared) and not allow_key_loss:
        parts = []
        if lost:
            parts.append('lacks %d key(s) that the current keystore holds: %s' % (len(lost), _keystore.name_aliases(lost)))
        if replaced:
            parts.append('holds different keys under %d alias(es): %s' % (len(replaced), _keystore.name_aliases(replaced)))
        if uncompared:
            parts.append('cannot be compared with the current keystore under %d alias(es): %s'
                         % (len(uncompared), '; '.join(uncompared[:_keystore.NAMED_IN_ERRORS])))
        risk = ('Restoring it would lose those keys and every tape written with them' if lost or replaced else
                'Whether restoring it would replace those keys is unknown (check the password)')
        plan.refusal = ('The backup set %s %s. %s, so nothing was changed. Choose a newer set, or set allow_key_loss: '
                        'true if these keys are known to be unused.' % (plan.set_path, ' and '.join(parts), risk))
    elif lost or replaced or uncompared:
        plan.warnings.append('allow_key_loss is true: keys of the current keystore are given up (lost: %s; replaced: %s; '
                             'not compared: %s).' % (_keystore.name_aliases(lost) or 'none',
                                                     _keystore.name_aliases(replaced) or 'none',
                                                     '; '.join(uncompared[:_keystore.NAMED_IN_ERRORS]) or 'none'))


def _key_changes(current, set_keystore, password):
    """``(lost, replaced, uncompared)``: aliases of the current keystore the set lacks, holds another key under, or
    cannot be compared under (with the reason), decided by _keystore.same_key()."""
    lost, replaced, uncompared = [], [], []
    for entry in current.entries:
        other = set_keystore.get(entry.alias)
        if other is None:
            lost.append(entry.alias)
            continue
        verdict, reason = _keystore.same_key(_keystore.KeySide.of_entry(entry, password),
                                             _keystore.KeySide.of_entry(other, password))
        if verdict == _keystore.DIFFERENT:
            replaced.append(entry.alias)
        elif verdict != _keystore.SAME:
            uncompared.append('%s (%s)' % (entry.alias, reason))
    return lost, replaced, uncompared


def diff_text(plan, after):
    lines = []
    for f in plan.files:
        sha = f['sha256'] if after else f['current_sha256']
        lines.append('%s: %s' % (f['name'], sha if sha else 'absent'))
    ranges, count = (plan.after_ranges, plan.after_count) if after else (plan.before_ranges, plan.before_count)
    if count is not None:
        lines.append('keys: %d' % count)
        lines.extend('  %s' % r for r in ranges)
    return '\n'.join(lines) + '\n'


RESTORE_TAG = 'restore'
RESTORE_JOURNAL = '.tapecrypt-restore.journal'


def restore_journal(keystore_path):
    """Where a restore keeps its journal: beside the real keystore."""
    return os.path.join(os.path.dirname(os.path.realpath(keystore_path)), RESTORE_JOURNAL)


def _restore_paths(targets):
    return [targets[kind] for kind in FILE_KINDS if targets.get(kind)]


def finish_interrupted(targets, check_mode=False):
    """Complete (or undo) a restore that a kill interrupted, and remove the leftovers of killed runs.

    Returns ``{'recovered': report}``, ``{'interrupted': journal summary}`` in check mode (which
    changes nothing), ``{'removed_stray_files': [...]}``, or an empty dict.
    """
    if not targets.get('keystore'):
        raise BackupError('keystore_path is required: it is where the set\'s keystore is restored to.')
    journal = restore_journal(targets['keystore'])
    paths = _restore_paths(targets)
    try:
        with _files.lock_dirs([p for p in paths if os.path.isdir(os.path.dirname(os.path.realpath(p)))]):
            content = _files.read_journal(journal)
            if check_mode:
                if content is None:
                    return {}
                return {'interrupted': {'txid': content.get('txid'), 'started': content.get('started'),
                                        'files': [i['path'] for i in content['files']]}}
            if content is not None:
                return {'recovered': _files.recover(journal)}
            removed = _files.remove_strays(paths, RESTORE_TAG)
            for directory in sorted({os.path.dirname(os.path.realpath(p)) for p in paths}):
                removed.extend(_files.remove_temporaries(directory))
            return {'removed_stray_files': removed} if removed else {}
    except (_files.FileError, OSError) as exc:
        raise BackupError('%s' % (exc if isinstance(exc, _files.FileError) else _reason(exc)))


def apply_restore(plan, backup=True, attributes=None, prepare=None):
    """Install the changed files of ``plan`` all or nothing (``_files.FileSet``), the current files kept first.

    ``attributes`` (``_files.FileAttributes``): owner, group and mode, set on each file before its
    rename; ``prepare(staged_path)``: the module's other file options. Returns ``(installed names,
    backup_files)``. A failed rename puts back what was installed; a kill is completed by the
    next run (``finish_interrupted``).
    """
    if plan.refusal:
        raise BackupError(plan.refusal)
    todo = [f for f in plan.files if f['change']]
    if not todo:
        return [], {}
    journal = restore_journal([f['real'] for f in plan.files if f['kind'] == 'keystore'][0])
    with _files.lock_dirs([f['real'] for f in plan.files] + [journal]):
        if _files.read_journal(journal) is not None:
            raise BackupError('Another restore was interrupted since this one was planned; nothing was changed. Run the '
                              'restore again: it completes the interrupted one first.')
        for f in todo:
            # Files may have moved on since the plan was made; restoring over a newer keystore must not happen unseen.
            if _files.read_bytes(f['real']) != f['current']:
                raise BackupError('%s changed while the restore was being prepared; nothing was changed. Run the restore again.'
                                  % f['target'])
        backup_files = _install(todo, journal, backup, attributes, prepare)
        for f in todo:
            if _files.sha256_file(f['real']) != f['sha256']:
                raise _changed(BackupError('%s does not read back as restored (sha256 differs); the pre-restore copy is %s.'
                                           % (f['target'], backup_files.get(f['name'], 'not kept'))))
    return [f['name'] for f in todo], backup_files


def _changed(exc):
    """Mark an error raised after files were replaced: the module result must still say changed."""
    exc.changed = True
    return exc


def _install(todo, journal, backup, attributes, prepare):
    try:
        with _files.FileSet(journal, RESTORE_TAG) as file_set:
            for f in todo:
                file_set.stage(f['name'], f['real'], f['data'], f['current_sha256'], attributes=attributes, prepare=prepare)
            return file_set.install([f['name'] for f in todo] if backup else ())
    except _files.InstallError as exc:
        if exc.rolled_back:
            raise BackupError('Installing the restored files failed (%s). The files already installed were put back; '
                              'nothing was changed.' % exc.reason)
        raise _changed(BackupError('Installing the restored files failed (%s). Its journal %s is kept: the next restore '
                                   'completes it before anything else.' % (exc.reason, journal)))
    except _files.FileError as exc:
        raise BackupError('%s The restore did not start; nothing was changed.' % exc)
    except OSError as exc:
        raise BackupError('Cannot stage the restored files (%s); nothing was changed.' % _reason(exc))


# --- add the keys a keystore lacks from a set (promotion) -----------------------------------------------------------


def plan_add_missing(set_path, target, password, owner=None):
    """Verify the set and plan adding to the keystore at ``target`` the keys of the set it lacks; touches nothing.

    Only entries are added: every entry of the current keystore stays byte for byte, in its place. A key of the set
    that the keystore holds under the same alias with another key (or one that cannot be compared) is a conflict:
    the plan is returned with ``refusal`` set. The current keystore must exist and open with ``password`` (the set's
    sealed entries are copied as they are, so both must use one password). A set that cannot be used raises
    BackupError; when its manifest still names its keys, the error names those the keystore lacks (``aliases_missing``).
    """
    if not target:
        raise BackupError('keystore_path is required: it is the keystore the set\'s keys are added to.')
    try:
        manifest, data, set_keystore = verify_set(set_path, password)
    except BackupError as exc:
        raise _unusable_set(exc, set_path, target)
    if owner is not None:
        check_set_owner(set_path, manifest, *owner)
    plan = RestorePlan(set_path, manifest)
    name = manifest['keystore']['file']
    ks_file = _planned_file('keystore', name, target, data[name], manifest['files'][name]['sha256'])
    current = _open_current(ks_file, password)
    missing, conflicts = _missing_and_conflicts(current, set_keystore, password)
    plan.set_aliases = [e.alias for e in set_keystore.entries if e.kind == 'secret']
    plan.current_aliases = [e.alias for e in current.entries if e.kind == 'secret']
    plan.before_ranges, plan.before_count = secret_ranges(current), len(current.entries)
    plan.aliases_gained = compress([e.alias for e in missing])
    plan.aliases_replaced = compress([a for a, dummy in conflicts])
    plan.files = [ks_file]
    ks_file.update(change=False, data=ks_file['current'], sha256=ks_file['current_sha256'])
    plan.after_ranges, plan.after_count = plan.before_ranges, plan.before_count
    if conflicts:
        plan.refusal = _conflict_message(set_path, target, conflicts)
    elif missing:
        merged = _jceks.Keystore(entries=list(current.entries))
        try:
            for entry in missing:
                merged.add(entry)
            new_data = _jceks.dump(merged, password)
        except _jceks.JceksError as exc:
            raise BackupError('The keys of the backup set %s cannot be added to %s: %s Nothing was changed.'
                              % (set_path, target, exc))
        ks_file.update(change=True, data=new_data, sha256=_files.sha256_bytes(new_data))
        plan.after_ranges, plan.after_count = secret_ranges(merged), len(merged.entries)
    return plan


def _open_current(ks_file, password):
    """The keystore keys are added to: it must exist and open with the set's password."""
    if ks_file['current'] is None:
        raise BackupError('%s does not exist. Keys are only added to a keystore that holds keys already; to restore a '
                          'server without one, restore the whole set (method: replace). Nothing was changed.'
                          % ks_file['target'])
    try:
        return _jceks.load(ks_file['current'], password)
    except _jceks.JceksError as exc:
        raise BackupError('The keystore %s cannot be opened with the set\'s password: %s The set\'s keys are copied '
                          'sealed as they are, so both must use one password. Nothing was changed.' % (ks_file['target'], exc))


def _missing_and_conflicts(current, set_keystore, password):
    """``(missing entries of the set, [(alias, reason)] of conflicts)``, decided by _keystore.same_key()."""
    missing, conflicts = [], []
    for entry in set_keystore.entries:
        other = current.get(entry.alias)
        if other is None:
            missing.append(entry)
            continue
        verdict, reason = _keystore.same_key(_keystore.KeySide.of_entry(other, password),
                                             _keystore.KeySide.of_entry(entry, password))
        if verdict != _keystore.SAME:
            conflicts.append((entry.alias, reason or 'the keys differ'))
    return missing, conflicts


def _conflict_message(set_path, target, conflicts):
    aliases = [a for a, dummy in conflicts]
    reasons = sorted({r for dummy, r in conflicts})
    return ('The keystore %s and the backup set %s hold different keys under %d alias(es): %s (%s). Adding the set\'s '
            'keys would fork them: one alias would name two keys, and tapes written with either could no longer be '
            'told apart. Nothing was changed. Find out which key wrote tapes (the audit files of the servers, the '
            'key-usage ledger) before anything else.'
            % (target, set_path, len(aliases), _keystore.name_aliases(aliases), '; '.join(reasons)))


def _unusable_set(exc, set_path, target):
    """The BackupError for a set that fails verification, naming the keys its manifest records that the keystore
    lacks: those keys are neither in this keystore nor in a set that can be used."""
    exc.aliases_missing = []
    try:
        manifest = read_manifest(set_path, None)
        recorded = expand(manifest['keystore'].get('ranges') or [], limit=None)
        with open(target, 'rb') as f:
            have = {a.lower() for a in _jceks.load(f.read(), None).aliases()}
    except (BackupError, AliasError, _jceks.JceksError, OSError, KeyError, TypeError):
        return exc
    missing = [a for a in recorded if a.lower() not in have]
    if missing:
        exc.aliases_missing = compress(missing)
        exc.args = ('%s Its manifest records %d key(s) that %s lacks: %s; they are in no keystore or set this task can '
                    'read, so nothing was changed.' % (exc, len(missing), target, _keystore.name_aliases(missing)),)
    return exc
