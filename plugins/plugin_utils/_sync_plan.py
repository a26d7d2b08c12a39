# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller half of the primary-to-redundant sync: the decision (``plan``) and the run (``Sync``).

Only the ``sync`` action plugin uses this; it runs on the controller and is never shipped to a
managed host. The host half (inventory, entry lists, fingerprints, export, the all-or-nothing
install) is ``module_utils/_sync.py``, which the ``sync`` module runs on each server.

Keys are never forked: every redundant alias must exist on the primary with the same key, and
``force`` never applies to keys. Results carry aliases, hashes and fingerprints only.
"""
from __future__ import annotations

import base64

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _files, _keystore
from ansible_collections.tapecrypt.ekm.plugins.module_utils._aliases import compress
from ansible_collections.tapecrypt.ekm.plugins.module_utils._sync import FILES, LABELS, STATE_VERSION, SyncError

# Drift statuses of one file.
SAME = 'same'
MISSING = 'missing'                        # absent on the redundant, present on the primary
PRIMARY_CHANGED = 'primary_changed'        # the primary's copy is newer than what the redundant holds
LOCAL_CHANGE = 'local_change'              # edited on the redundant since the last sync
UNTRACKED = 'untracked_difference'         # differs, and no sync record says where the redundant's copy came from
NOT_ON_PRIMARY = 'not_on_primary'          # nothing to copy; the redundant's file (if any) is left alone
CONFLICT = 'conflict'                      # keystore only: the subset rule is broken
IN_SYNC_STATUSES = (SAME, NOT_ON_PRIMARY)
TRAVELS = (MISSING, PRIMARY_CHANGED)


# ---------------------------------------------------------------------------------------------
# The decision

def compare_entries(primary_entries, redundant_entries):
    """The subset rule on entry lists: ``(added, extra, differing_kind, to_fingerprint)``.

    ``to_fingerprint``: aliases that _keystore.same_key() can only decide with fingerprints (or must
    report as not comparable); see key_verdicts().
    """
    added = [a for a in primary_entries if a not in redundant_entries]
    extra, differing_kind, to_fingerprint = [], [], []
    for alias, (kind, sha) in redundant_entries.items():
        other = primary_entries.get(alias)
        if other is None:
            extra.append(alias)
            continue
        verdict, dummy = _keystore.same_key(_keystore.KeySide(*other), _keystore.KeySide(kind, sha))
        if verdict == _keystore.DIFFERENT:
            differing_kind.append(alias)
        elif verdict != _keystore.SAME:
            to_fingerprint.append(alias)
    return sorted(added), sorted(extra), sorted(differing_kind), sorted(to_fingerprint)


def key_verdicts(aliases, primary_entries, redundant_entries, primary_fp, redundant_fp):
    """``(different, not_comparable)`` for aliases whose fingerprints were fetched, by _keystore.same_key()."""
    different, not_comparable = [], []
    for alias in aliases:
        verdict, reason = _keystore.same_key(
            _keystore.KeySide(*primary_entries[alias], fingerprint=primary_fp.get(alias)),
            _keystore.KeySide(*redundant_entries[alias], fingerprint=redundant_fp.get(alias)))
        if verdict == _keystore.DIFFERENT:
            different.append(alias)
        elif verdict != _keystore.SAME:
            not_comparable.append('%s (%s)' % (alias, reason or 'no fingerprint'))
    return different, not_comparable


def primary_lost_keys(extra, different):
    """The conflict entry when the redundant's keystore is the very file the last sync copied from the primary.

    Then its keys came from the primary, and the primary has lost some of them (restored from an
    older set, or replaced): moving this keystore aside would spread the loss to every server.
    """
    aliases = sorted(set(extra) | set(different))
    what = []
    if extra:
        what.append('%d key(s) it no longer has (%s)' % (len(extra), _keystore.name_aliases(extra)))
    if different:
        what.append('other keys than it has now under %s' % _keystore.name_aliases(different))
    return {'file': 'keystore', 'kind': 'primary_lost_keys', 'aliases': compress(aliases),
            'reason': 'The primary has lost keys: this redundant server\'s keystore is the one the last sync copied from '
                      'the primary (the sync state records it), and it holds %s. Tapes written with those keys can be read '
                      'only with them. Restore the primary\'s keystore from a backup set that holds them (restore.yml; '
                      'this server\'s keystore is a copy of them too), then run the sync again. Do not move this '
                      'server\'s keystore aside: that would spread the loss. Nothing was changed.' % '; and '.join(what)}


def keystore_conflicts(extra, different, copied_from_primary=False):
    """The conflict entries (and their messages) for a redundant keystore that is not a subset of the primary's.

    ``copied_from_primary``: the redundant's keystore is the one the last sync installed (``primary_lost_keys``).
    """
    if copied_from_primary:
        return [primary_lost_keys(extra, different)]
    conflicts = []
    advice = ('An independently created keystore cannot be merged: its keys may have encrypted tapes and exist nowhere '
              'else. Keep it (back it up, and keep it where those tapes can be read), move it aside, and run the sync '
              'again so that the primary\'s keystore is copied. force does not apply to keys.')
    if extra:
        conflicts.append({
            'file': 'keystore', 'kind': 'extra_aliases', 'aliases': compress(extra),
            'reason': 'The keystore on this redundant server holds keys that were not copied from the primary: %d alias(es) '
                      'the primary does not have (%s). %s' % (len(extra), _keystore.name_aliases(extra), advice)})
    if different:
        conflicts.append({
            'file': 'keystore', 'kind': 'different_keys', 'aliases': compress(different),
            'reason': 'The keystore on this redundant server holds different keys than the primary under the same '
                      'alias(es): %s. It was created independently, not copied from the primary, and tapes written with '
                      'its keys can only be read with them. %s' % (_keystore.name_aliases(different), advice)})
    return conflicts


def _record(state, name, path):
    """The sha256 the last sync installed for this file, or None when there is no usable record."""
    if not state:
        return None
    item = state['files'].get(name)
    if not isinstance(item, dict) or item.get('path') != path:
        return None
    return item.get('sha256')


def plan(primary_inv, redundant_inv, force, keystore_cmp=None):
    """Decide per file: its drift status, whether it travels, and the conflicts that stop the run.

    ``keystore_cmp`` is ``{'added': [...], 'extra': [...], 'different': [...]}`` when both
    keystores exist and their bytes differ.
    """
    drift, conflicts, travel, forced = {}, [], [], []
    state = redundant_inv.get('state')
    for name in FILES:
        r = redundant_inv['files'].get(name)
        p = primary_inv['files'].get(name)
        if r is None:
            continue
        recorded = _record(state, name, r['path'])
        item = {'path': r['path'], 'primary_sha256': p['sha256'], 'redundant_sha256': r['sha256'], 'recorded_sha256': recorded}
        if not p['exists']:
            item['status'] = NOT_ON_PRIMARY
        elif r['sha256'] == p['sha256']:
            item['status'] = SAME
        elif not r['exists']:
            item['status'] = MISSING
        elif name == 'keystore':
            if keystore_cmp['extra'] or keystore_cmp['different']:
                item['status'] = CONFLICT
                conflicts.extend(keystore_conflicts(keystore_cmp['extra'], keystore_cmp['different'],
                                                    copied_from_primary=recorded is not None and recorded == r['sha256']))
            else:
                item['status'] = PRIMARY_CHANGED
        elif recorded is not None and recorded == r['sha256']:
            item['status'] = PRIMARY_CHANGED
        else:
            item['status'] = LOCAL_CHANGE if recorded is not None else UNTRACKED
            if force:
                forced.append(name)
            else:
                conflicts.append(_opaque_conflict(name, item, state))
        if item['status'] in TRAVELS or name in forced:
            travel.append(name)
        drift[name] = item
    if drift['keystore']['status'] == NOT_ON_PRIMARY:
        raise SyncError('There is no keystore at %s on the primary, so there is nothing to sync from. Check '
                        'primary_keystore_path (or keystore_path) and that the primary has been set up. Nothing was '
                        'changed.' % primary_inv['files']['keystore']['path'])
    interrupted = redundant_inv.get('interrupted')
    in_sync = not conflicts and not interrupted and all(d['status'] in IN_SYNC_STATUSES for d in drift.values())
    new_records = {name: {'path': d['path'], 'sha256': d['primary_sha256']}
                   for name, d in drift.items() if d['status'] != NOT_ON_PRIMARY}
    state_outdated = not state or any(_record(state, name, rec['path']) != rec['sha256'] for name, rec in new_records.items())
    return {'drift': drift, 'conflicts': conflicts, 'travel': travel, 'forced': forced, 'in_sync': in_sync,
            'records': new_records, 'state_outdated': state_outdated}


def _opaque_conflict(name, item, state):
    label = 'The drive table' if name == 'drivetable' else LABELS[name]
    if item['recorded_sha256'] is not None:
        reason = ('%s on this redundant server (%s) was changed locally since the last sync (sha256 then %s, now %s) and '
                  'differs from the primary\'s. It is not overwritten without force: run with force: true to replace it '
                  'with the primary\'s (the local version is always kept as a backup), or make the same '
                  'change on the primary first.' % (label, item['path'], item['recorded_sha256'][:12], item['redundant_sha256'][:12]))
    else:
        reason = ('%s on this redundant server (%s) differs from the primary\'s, and there is no record of an earlier sync '
                  '(%s), so it cannot be told whether it holds local changes. Compare the two files; then run with force: '
                  'true to replace it with the primary\'s (the local version is always kept as a backup).'
                  % (label, item['path'], 'no sync state yet' if not state else 'the sync state does not cover this file'))
    return {'file': name, 'kind': item['status'], 'path': item['path'], 'reason': reason}


# ---------------------------------------------------------------------------------------------
# The run

class Sync:
    """One sync run, driven from the controller.

    ``primary(args)`` and ``redundant(args)`` run the module's phase ``args`` (the request the
    action plugin sends under ``_sync.PHASE_KEY``, no option of the module) on that server and
    return its result, raising SyncError on failure; ``transfer(name, data)`` puts bytes on the
    redundant server and returns the path there.
    """

    def __init__(self, primary, redundant, transfer, primary_name, force=False, check_mode=False, diff=False,
                 with_attributes=False):
        self.primary = primary
        self.redundant = redundant
        self.transfer = transfer
        self.primary_name = primary_name
        self.force = force
        self.check_mode = check_mode
        self.diff = diff
        self.with_attributes = with_attributes
        self.warnings = []
        self.result = {'changed': False, 'in_sync': False, 'drift': {}, 'conflicts': [], 'aliases_added': [],
                       'changed_files': [], 'backup_files': [], 'removed_copies': [], 'primary_digest': None, 'redundant_digest': None}

    def _fail(self, message):
        raise SyncError(message, self.result)

    def run(self):
        p_inv, r_inv = self._inventories()
        added, keystore_cmp = self._compare_keystores(p_inv, r_inv)
        decision = plan(p_inv, r_inv, self.force, keystore_cmp)
        self._report(decision, added)
        if self.diff and decision['travel']:
            self.result['diff'] = self._diff(decision, p_inv, r_inv, added)
        if self.check_mode:
            return self._check_report(decision)
        if not (decision['travel'] or decision['state_outdated'] or self.with_attributes):
            if self.result['redundant_digest'] != self.result['primary_digest']:
                self._fail('The keystores of the two servers differ although their files were found identical; run the '
                           'sync again.')
            return self.result
        return self._install(decision, p_inv, self._send(decision['travel'], p_inv))

    def _inventories(self):
        """Both servers' inventories; the redundant's also reports a recovered or pending interrupted install."""
        res = self.result
        p_inv = self.primary({'phase': 'inventory', 'side': 'primary'})
        r_inv = self.redundant({'phase': 'inventory', 'side': 'redundant'})
        self.warnings = list(r_inv.get('warnings') or [])
        if r_inv.get('recovered'):
            res['recovered'] = r_inv['recovered']
            res['changed'] = True
        if r_inv.get('removed_stray_files'):
            res['removed_stray_files'] = r_inv['removed_stray_files']
        if r_inv.get('interrupted'):
            res['interrupted'] = r_inv['interrupted']
            self.warnings.append('A previous sync was interrupted during its install on this redundant server; the next '
                                 'run that is not in check mode completes it (or undoes it) first.')
        res['primary_digest'] = p_inv['files']['keystore']['digest']
        res['redundant_digest'] = r_inv['files']['keystore']['digest']
        state = r_inv.get('state')
        if state:
            res['last_sync'] = state.get('synced_at')
        return p_inv, r_inv

    def _compare_keystores(self, p_inv, r_inv):
        """``(aliases added, keystore comparison for plan)``: entry lists first, fingerprints only where bytes differ."""
        pk, rk = p_inv['files']['keystore'], r_inv['files']['keystore']
        if not pk['exists'] or pk['sha256'] == rk['sha256']:
            return [], None
        p_entries = self.primary({'phase': 'entries', 'side': 'primary', 'sha256': pk['sha256']})['entries']
        if not rk['exists']:
            return sorted(p_entries), None
        r_entries = self.redundant({'phase': 'entries', 'side': 'redundant', 'sha256': rk['sha256']})['entries']
        added, extra, differing_kind, to_fp = compare_entries(p_entries, r_entries)
        different = list(differing_kind)
        if to_fp:
            p_fp = self.primary({'phase': 'fingerprints', 'side': 'primary', 'sha256': pk['sha256'],
                                 'aliases': to_fp})['fingerprints']
            r_fp = self.redundant({'phase': 'fingerprints', 'side': 'redundant', 'sha256': rk['sha256'],
                                   'aliases': to_fp})['fingerprints']
            differ, not_comparable = key_verdicts(to_fp, p_entries, r_entries, p_fp, r_fp)
            if not_comparable:
                self._fail('Sync from the primary %s refused: the keys under these aliases differ in bytes and cannot be '
                           'compared: %s. Nothing was changed.' % (self.primary_name, '; '.join(not_comparable)))
            different.extend(differ)
        return added, {'added': added, 'extra': extra, 'different': sorted(different)}

    def _report(self, decision, added):
        """Put the decision into the result; a conflict stops the run here, before anything changes."""
        res = self.result
        res['drift'] = decision['drift']
        res['conflicts'] = decision['conflicts']
        res['in_sync'] = decision['in_sync']
        res['aliases_added'] = compress(added) if 'keystore' in decision['travel'] else []
        if decision['forced']:
            res['forced'] = decision['forced']
        if self.warnings:
            res['warnings'] = self.warnings
        if decision['conflicts']:
            self._fail('Sync from the primary %s refused. %s Nothing was changed.' % (
                self.primary_name, ' '.join(c['reason'] for c in decision['conflicts'])))

    def _check_report(self, decision):
        res = self.result
        travel = decision['travel']
        res['changed'] = bool(travel or decision['state_outdated'] or res.get('interrupted') or res['changed'])
        if self.with_attributes:
            res['changed'] = self.redundant({'phase': 'install'}).get('attributes_changed') or res['changed']
        res['changed_files'] = [decision['drift'][n]['path'] for n in travel]
        return res

    def _send(self, travel, p_inv):
        """Fetch the travelling files from the primary, check them, and put them on the redundant; name -> path there."""
        sources = {}
        if not travel:
            return sources
        content = self.primary({'phase': 'export', 'side': 'primary',
                                'expect': {n: p_inv['files'][n]['sha256'] for n in travel}})['content']
        for name in travel:
            data = base64.b64decode(content.pop(name))
            if _files.sha256_bytes(data) != p_inv['files'][name]['sha256']:
                self._fail('The %s from the primary arrived damaged on the controller; nothing was changed. Run the '
                           'sync again.' % LABELS[name])
            sources[name] = self.transfer(name, data)
        return sources

    def _install(self, decision, p_inv, sources):
        res = self.result
        travel = decision['travel']
        digest = p_inv['files']['keystore']['digest']
        try:
            done = self.redundant({
                'phase': 'install', 'side': 'redundant', 'sources': sources,
                'expect': {n: p_inv['files'][n]['sha256'] for n in travel},
                'current': {n: d['redundant_sha256'] for n, d in decision['drift'].items() if d['status'] != NOT_ON_PRIMARY},
                'primary_digest': digest, 'write_state': bool(travel or decision['state_outdated']),
                'forced': decision['forced'],
                'state': {'version': STATE_VERSION, 'primary': self.primary_name, 'files': decision['records'],
                          'keystore_digest': digest},
            })
        except SyncError as exc:
            # A failure after files were replaced still reports the change, and which files.
            res['changed'] = bool(res['changed'] or exc.result.get('changed'))
            res['changed_files'] = exc.result.get('changed_files') or []
            raise SyncError(str(exc), res) from None
        res['changed_files'] = done['changed_files']
        res['backup_files'] = [b for b in done['backup_files'] if b]
        res['removed_copies'] = done.get('removed_copies') or []
        res['redundant_digest'] = done['redundant_digest']
        res['changed'] = bool(res['changed'] or travel or decision['state_outdated'] or done.get('attributes_changed'))
        if travel:
            res['in_sync'] = True
        if res['redundant_digest'] != res['primary_digest']:
            self._fail('After the sync, the keystore on this redundant server does not match the primary\'s (digest %s, '
                       'primary %s).' % (res['redundant_digest'], res['primary_digest']))
        return res

    @staticmethod
    def _diff(decision, p_inv, r_inv, added):
        diffs = []
        for name in decision['travel']:
            d = decision['drift'][name]
            before = ['sha256: %s' % d['redundant_sha256']] if d['redundant_sha256'] else []
            after = ['sha256: %s' % d['primary_sha256']]
            if name == 'keystore':
                if r_inv['files']['keystore']['exists']:
                    before.append('entries: %d' % r_inv['files']['keystore']['count'])
                after.append('entries: %d' % p_inv['files']['keystore']['count'])
                after.extend('added: %s' % item for item in compress(added))
            diffs.append({'before_header': d['path'] if d['redundant_sha256'] else '/dev/null',
                          'after_header': '%s (from the primary)' % d['path'],
                          'before': '\n'.join(before) + '\n' if before else '',
                          'after': '\n'.join(after) + '\n'})
        return diffs
