# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Primary-to-redundant sync of an EKM's keystore, KeyGroups.xml and drive table: the host half.

The ``sync`` module runs this on either server (``run_phase``): inventory, entry lists,
fingerprints, export of file bytes, and the all-or-nothing install with its journal on the
redundant server. The controller half, which asks both servers, decides and moves only changed
files, is ``plugin_utils/_sync_plan.py`` (never shipped to a host).

Keys are never forked: every redundant alias must exist on the primary with the same key, and
``force`` never applies to keys. Results carry aliases, hashes and fingerprints only.
"""
from __future__ import annotations

import base64
import datetime
import json
import os

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _copies, _files, _jceks, _keystore

FILES = ('keystore', 'keygroups', 'drivetable')
LABELS = {'keystore': 'keystore', 'keygroups': 'KeyGroups.xml', 'drivetable': 'drive table'}
STATE_NAME = '.tapecrypt-sync.json'
STATE_VERSION = 1
JOURNAL_SUFFIX = '.journal'
# The sync's staged and undo files are named .tapecrypt-sync-<run id>.<file>.staged/.undo (see _files.FileSet).
TAG = 'sync'
MARK = '%s%s-' % (_files.MARK, TAG)

# The options of tapecrypt.ekm.sync, shared by the module and its action plugin.
ARGUMENT_SPEC = dict(
    primary=dict(type='str', required=True),
    keystore_path=dict(type='path', required=True),
    keygroups_path=dict(type='path'),
    drivetable_path=dict(type='path'),
    primary_keystore_path=dict(type='path'),
    primary_keygroups_path=dict(type='path'),
    primary_drivetable_path=dict(type='path'),
    password=dict(type='str', required=True, no_log=True),
    primary_password=dict(type='str', no_log=True),
    force=dict(type='bool', default=False),
    backup=dict(type='bool', default=True),
    keep_copies=dict(type='int', default=5),
    sync_state_path=dict(type='path'),
)
# Constraints between the options, checked by the module and by its action plugin alike.
REQUIRED_BY = {'primary_keygroups_path': ('keygroups_path',), 'primary_drivetable_path': ('drivetable_path',)}
# The key of the module arguments that carries the action plugin's phase request. It is not an option: the action
# plugin refuses it from a task and sends it with ansible-core's ignore_unknown_opts, so the argument spec (and the
# documentation users read) never name it.
PHASE_KEY = '_sync'
# File options the action plugin passes through to the install on the redundant server.
ATTRIBUTE_OPTIONS = ('owner', 'group', 'mode', 'seuser', 'serole', 'setype', 'selevel', 'attributes')


class SyncError(Exception):
    """A domain error; the message is a complete sentence for ``fail_json``. ``result`` rides along."""

    def __init__(self, message, result=None):
        super().__init__(message)
        self.result = result or {}


def primary_password(params):
    """The password of the primary's keystore: ``primary_password`` when given, else ``password`` (the one place
    this fallback is written; the copied keystore opens with it afterwards)."""
    return params['primary_password'] if params.get('primary_password') is not None else params['password']


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def default_state_path(keystore_path):
    return os.path.join(os.path.dirname(os.path.abspath(keystore_path)), STATE_NAME)


def journal_path(state_path):
    return state_path + JOURNAL_SUFFIX


def _server(side):
    return 'the primary' if side == 'primary' else 'this redundant server'


# ---------------------------------------------------------------------------------------------
# Host side: reading

def file_summary(path):
    sha = _files.sha256_file(path)
    return {'path': path, 'exists': sha is not None, 'sha256': sha,
            'size': os.path.getsize(path) if sha is not None else None}


def _read_keystore(path, password, side):
    """Load with the integrity check; errors name the side, the path and what to do."""
    try:
        keystore, data = _keystore.read(path, password)
    except _keystore.KeystoreError as exc:
        if side == 'primary':
            raise SyncError('The keystore on the primary cannot be used as the source of a sync: %s It is never copied '
                            'in that state; check the password (primary_password) or restore the primary\'s keystore '
                            'from a verified backup. Nothing was changed.' % exc)
        raise SyncError('The keystore on this redundant server cannot be opened with the given password: %s '
                        'Check password (the redundant\'s current keystore password). Nothing was changed.' % exc)
    return keystore, data


def keystore_summary(path, password, side):
    keystore, data = _read_keystore(path, password, side)
    if keystore is None:
        return {'path': path, 'exists': False, 'sha256': None, 'size': None, 'count': 0, 'digest': None}
    return {'path': path, 'exists': True, 'sha256': _files.sha256_bytes(data), 'size': len(data),
            'count': len(keystore.entries), 'digest': _keystore.digest(keystore)}


def _checked_keystore(path, password, side, expected_sha):
    """The keystore as inventoried earlier in this run, or an error when it changed since."""
    keystore, data = _read_keystore(path, password, side)
    sha = _files.sha256_bytes(data) if data is not None else None
    if sha != expected_sha:
        raise SyncError('The keystore %s on %s changed while the sync was running; nothing was changed. Run the sync '
                        'again.' % (path, _server(side)))
    return keystore


def entry_map(path, password, side, expected_sha):
    """``{alias: [kind, entry_sha256]}``: enough to apply the subset rule without decrypting."""
    keystore = _checked_keystore(path, password, side, expected_sha)
    return {e.alias.lower(): [e.kind, e.sha256] for e in keystore.entries}


def fingerprints(path, password, side, expected_sha, aliases):
    """Fingerprints of the named secret entries (decrypts exactly those); None for other kinds."""
    keystore = _checked_keystore(path, password, side, expected_sha)
    result = {}
    for alias in aliases:
        entry = keystore.get(alias)
        if entry is None:
            raise SyncError('Alias %s is not in the keystore %s on %s any more; nothing was changed. Run the sync again.'
                            % (alias, path, _server(side)))
        if entry.kind != 'secret':
            result[alias] = None
            continue
        try:
            dummy, key = _jceks.unseal(entry, password)
        except _jceks.JceksError as exc:
            raise SyncError('Alias %s has different bytes on the two servers, so its key must be compared, but it cannot '
                            'be decrypted on %s: %s Nothing was changed.' % (alias, _server(side), exc))
        result[alias] = _keystore.fingerprint(key)
    return result


def read_state(state_path):
    """The sync record, or None when there is none; an unreadable record counts as none (with a warning)."""
    data = _files.read_bytes(state_path)
    if data is None:
        return None, None
    try:
        state = json.loads(data.decode('utf-8'))
        if not isinstance(state, dict) or state.get('version') != STATE_VERSION or not isinstance(state.get('files'), dict):
            raise ValueError('unknown layout')
    except ValueError:
        return None, ('The sync state file %s is unreadable, so local changes cannot be told from the primary\'s; '
                      'every file that differs from the primary is treated as untracked.' % state_path)
    return state, None


def read_journal(state_path):
    return _files.read_journal(journal_path(state_path))


# ---------------------------------------------------------------------------------------------
# Host side: the journal, recovery and stray files (the install itself is _files.FileSet)

def _write_json(path, data):
    _files.atomic_write(path, (json.dumps(data, indent=2, sort_keys=True) + '\n').encode('utf-8'), mode=0o600)


def _write_state(state_path, state):
    _write_json(state_path, dict(state, synced_at=_now()))


def recover(state_path):
    """Finish or undo an install that a kill interrupted (see ``_files.recover``); a report, or None without a journal.

    Completing it also writes the sync state the interrupted run would have written.
    """
    return _files.recover(journal_path(state_path), after=lambda state: _write_state(state_path, state))


def remove_strays(paths):
    """Remove the sync's staged and undo files that no journal refers to, and the project's stale temporary files."""
    removed = _files.remove_strays(paths, TAG)
    for directory in sorted({os.path.dirname(os.path.realpath(p)) for p in paths}):
        removed.extend(_files.remove_temporaries(directory))
    return removed


# ---------------------------------------------------------------------------------------------
# Host side: phases

def inventory(paths, password, side, state_path=None, check_mode=True):
    """What one server holds. On the redundant (``state_path`` given) also the sync record,
    and, outside check mode, recovery of an interrupted install and removal of stray files."""
    result = {'files': {}}
    if state_path is None:
        result['files'] = _summaries(paths, password, side)
        return result
    state_dir = os.path.dirname(os.path.abspath(state_path))
    if not os.path.isdir(state_dir):
        raise SyncError('The directory %s (of the keystore and the sync state) does not exist on this redundant server; '
                        'create it first (the tapecrypt.ekm.server side does). Nothing was changed.' % state_dir)
    with _files.lock_dirs([state_dir] + [p for p in paths.values() if p]):
        journal = read_journal(state_path)
        if journal is not None and not check_mode:
            result['recovered'] = recover(state_path)
            journal = None
        if journal is not None:
            result['interrupted'] = {'txid': journal.get('txid'), 'started': journal.get('started'),
                                     'files': [i['path'] for i in journal['files']]}
        elif not check_mode:
            result['removed_stray_files'] = remove_strays([p for p in paths.values() if p])
        result['files'] = _summaries(paths, password, side)
        result['state'], warning = read_state(state_path)
        if warning:
            result['warnings'] = [warning]
    return result


def _summaries(paths, password, side):
    files = {}
    for name in FILES:
        path = paths.get(name)
        if not path:
            continue
        if name == 'keystore':
            files[name] = keystore_summary(path, password, side)
        else:
            files[name] = file_summary(path)
    return files


def export(paths, expected):
    """The bytes of the named files, base64, each checked against the hash the plan was made with."""
    out = {}
    for name, sha in expected.items():
        data = _files.read_bytes(paths[name])
        if data is None or _files.sha256_bytes(data) != sha:
            raise SyncError('The %s %s on the primary changed while the sync was running; nothing was changed. Run the '
                            'sync again.' % (LABELS[name], paths[name]))
        out[name] = base64.b64encode(data).decode('ascii')
    return out


def _read_transferred(name, source, expected_sha):
    """The bytes of a file the controller transferred, checked against the primary's hash."""
    data = _files.read_bytes(source)
    if data is None or _files.sha256_bytes(data) != expected_sha:
        raise SyncError('The %s arrived damaged on this redundant server (its hash is not the primary\'s); nothing was '
                        'changed. Run the sync again.' % LABELS[name])
    return data


def _verify_staged_keystore(staged, new_password, primary_digest, current_path, password):
    """The file about to become the redundant's keystore: intact, the primary's entries, and no key forked."""
    try:
        new, dummy = _keystore.read(staged, new_password)
    except _keystore.KeystoreError as exc:
        raise SyncError('The keystore copied from the primary fails its check on this redundant server (%s); nothing was '
                        'changed.' % exc)
    if _keystore.digest(new) != primary_digest:
        raise SyncError('The keystore copied from the primary does not hold the entries the primary reported; nothing was '
                        'changed. Run the sync again.')
    current, dummy = _read_keystore(current_path, password, 'redundant')
    if current is not None:
        try:
            dummy, conflicts = _keystore.compare(new, current, new_password, password)
        except _keystore.KeystoreError as exc:
            raise SyncError('%s Nothing was changed.' % exc)
        if conflicts:
            raise SyncError('The redundant\'s keystore changed during the sync and now holds keys that differ from the '
                            'primary\'s (%s); nothing was changed.' % _keystore.name_aliases(conflicts))


def install(paths, state_path, sources, expect, current, primary_digest, password, new_password, backup, state,
            write_state=True, attributes=None, forced=(), file_attributes=None, keep_copies=None):
    """Install the transferred files all or nothing (``_files.FileSet``), then record them in the sync state.

    ``sources``: name -> transferred file; ``expect``: name -> sha256 of the primary's file;
    ``current``: name -> the redundant's sha256 the plan was made with (every synced file), so a
    change made on this server since the plan stops the install instead of being overwritten.
    ``forced``: files replaced over a local change; they are backed up even without ``backup``.
    ``file_attributes``: the owner, group and mode the files get before their rename;
    ``attributes(path, changed)``: the module's other file options, applied to each staged file.
    The sync state is written as the install's last step, so a killed run completes it too.
    ``keep_copies``: how many copies of each replaced key-group and drive-table file stay beside it
    (``_copies``); keystore copies are bounded by the backup module, which can prove them redundant.
    """
    result = {'changed_files': [], 'backup_files': [], 'removed_copies': []}
    with _files.lock_dirs([os.path.dirname(os.path.abspath(state_path))] + [p for p in paths.values() if p]):
        if read_journal(state_path) is not None:
            raise SyncError('Another sync was interrupted on this redundant server since this run began; nothing was '
                            'changed. Run the sync again, it completes the interrupted one first.')
        for name, sha in current.items():
            if _files.sha256_file(paths[name]) != sha:
                raise SyncError('The %s %s on this redundant server changed while the sync was running; nothing was '
                                'changed. Run the sync again.' % (LABELS[name], paths[name]))
        names = [name for name in FILES if name in sources]
        if names:
            prepare = (lambda staged: attributes(staged, False)) if attributes is not None else None
            with _files.FileSet(journal_path(state_path), TAG) as file_set:
                try:
                    for name in names:
                        file_set.stage(name, paths[name], _read_transferred(name, sources[name], expect[name]),
                                       current.get(name), attributes=file_attributes, prepare=prepare)
                except _files.FileError as exc:
                    raise SyncError(_unchanged(exc)) from None
                if 'keystore' in sources:
                    _verify_staged_keystore(file_set.staged('keystore'), new_password, primary_digest, paths['keystore'],
                                            password)
                installed = [os.path.realpath(paths[name]) for name in names]
                try:
                    backups = file_set.install([n for n in names if backup or n in forced], payload=state,
                                               after=lambda record: _write_state(state_path, record))
                except _files.InstallError as exc:
                    if exc.rolled_back:
                        raise SyncError('%s The sync can be run again.' % exc, result)
                    raise SyncError(str(exc), dict(result, changed=True, changed_files=installed))
                except _files.FileError as exc:
                    # Before the journal: FileSet removed what it had made, backup copies included.
                    raise SyncError(_unchanged(exc)) from None
            result['changed_files'] = installed
            result['backup_files'] = [b for b in backups.values() if b]
            result['removed_copies'] = [copy for name in names if name != 'keystore'
                                        for copy in _copies.prune(paths[name], keep_copies)[0]]
        elif write_state:
            try:
                _write_state(state_path, state)
            except _files.FileError as exc:
                raise SyncError(_unchanged(exc)) from None
        keystore_password = new_password if 'keystore' in sources else password
        after, dummy = _read_keystore(paths['keystore'], keystore_password, 'redundant')
        result['redundant_digest'] = _keystore.digest(after) if after is not None else None
    if result['redundant_digest'] != primary_digest:
        raise SyncError('After the sync, the keystore on this redundant server does not hold the primary\'s entries '
                        '(digest %s, primary %s).' % (result['redundant_digest'], primary_digest), dict(result, changed=True))
    return result


def _unchanged(exc):
    """The message of a failure before any file was replaced (a full disk, say), saying so."""
    return '%s Nothing was changed on this redundant server; free space (or fix the cause) and run the sync again.' % (
        str(exc).rstrip('.') + '.')


def apply_attributes(paths, attributes):
    """Owner, group and mode of the synced files that exist (AnsibleModule honours check mode)."""
    changed = False
    for path in paths:
        if path and os.path.exists(path):
            changed = attributes(path, changed)
    return changed


# ---------------------------------------------------------------------------------------------
# Module entry point

# Phases that only read, on either server: a failure in one of them has changed nothing.
READ_ONLY_PHASES = ('entries', 'fingerprints', 'export')


def run_phase(params, check_mode=False, attributes=None):
    """Run one phase of the protocol for the module; ``params`` are the module's parameters.

    Every error is a SyncError whose message is complete: where the phase only reads (on the
    primary, in check mode, or a read-only phase) it says that nothing was changed.
    """
    request = params['_sync'] or {}
    read_only = check_mode or request.get('side') == 'primary' or request.get('phase') in READ_ONLY_PHASES
    unchanged = ' Nothing was changed.' if read_only else ''
    try:
        return _run_phase(params, check_mode, attributes)
    except (_files.FileError, _keystore.KeystoreError, _jceks.JceksError) as exc:
        raise SyncError('%s%s' % (exc, unchanged))
    except OSError as exc:
        raise SyncError('%s: %s.%s' % (exc.filename or 'file operation', exc.strerror or exc, unchanged))


def _run_phase(params, check_mode, attributes):
    request = params['_sync'] or {}
    phase = request.get('phase')
    side = request.get('side', 'redundant')
    paths = {'keystore': params['keystore_path'], 'keygroups': params['keygroups_path'],
             'drivetable': params['drivetable_path']}
    state_path = params['sync_state_path'] or default_state_path(params['keystore_path'])
    password = params['password']
    if phase == 'inventory':
        return inventory(paths, password, side, state_path if side == 'redundant' else None, check_mode)
    if phase == 'entries':
        return {'entries': entry_map(paths['keystore'], password, side, request['sha256'])}
    if phase == 'fingerprints':
        return {'fingerprints': fingerprints(paths['keystore'], password, side, request['sha256'], request['aliases'])}
    if phase == 'export':
        return {'content': export(paths, request['expect'])}
    if phase == 'install':
        new_password = primary_password(params)
        if check_mode:
            changed = apply_attributes(paths.values(), attributes) if attributes else False
            return {'attributes_changed': changed}
        result = install(paths, state_path, request.get('sources') or {}, request.get('expect') or {}, request.get('current') or {},
                         request['primary_digest'], password, new_password, params['backup'], request['state'],
                         request.get('write_state', True), attributes, request.get('forced') or (),
                         _files.FileAttributes.from_params(params), params.get('keep_copies'))
        if attributes is not None:
            installed = set(result['changed_files'])
            result['attributes_changed'] = apply_attributes(
                [p for p in paths.values() if p and os.path.realpath(p) not in installed], attributes)
        return result
    raise SyncError('tapecrypt.ekm.sync runs through its action plugin; the module cannot be called on its own '
                    '(unknown phase %r).' % (phase,))
