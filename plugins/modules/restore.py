#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: restore
short_description: Restore an EKM server's keystore and files from a verified backup set
version_added: 0.1.0
description:
  - Restores the keystore, C(KeyManagerConfig.properties), C(KeyGroups.xml) and the drive table of an IBM/Dell
    Encryption Key Manager (EKM) server from a backup set made by M(tapecrypt.ekm.backup).
  - The set is verified completely before anything is touched. Its manifest must be present, parseable, marked
    verified and unaltered (its HMAC checks with O(password)); every file it lists must be present with the recorded
    size and SHA-256; the keystore must open with O(password) and hold the recorded entry count and digest.
  - A set that lacks an alias the current keystore holds, or holds a different key under one, would lose keys and
    every tape written with them. Such a set is refused, naming the aliases, unless O(allow_key_loss=true).
  - Before any file is replaced, the current file is kept as a copy beside it (see O(backup)). The new files are
    then all written to temporary files next to their targets, with their owner, group and mode, and flushed; a
    journal (C(.tapecrypt-restore.journal) beside the keystore) is written, and the files are renamed into place. If
    a rename fails, the files already renamed are put back; if the run is killed between renames, the next run
    completes the restore (or undoes it) before anything else, so old and restored files are never left mixed.
  - Files already equal to the set's are left alone; when all are, the task reports no change.
  - Stop the EKM server before a restore and start it afterwards; EKM rewrites C(KeyGroups.xml) and the drive table
    while it runs.
  - With O(method=add_missing) only keys are added, for example to a redundant server that becomes the primary after
    the primary was lost for good. The keys of the set that the keystore lacks are appended to it; every entry it
    holds stays as it is, byte for byte, and no other file is touched. A key of the set that the keystore holds
    under the same alias with another key is a conflict; the task fails naming the aliases, and nothing changes.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.files
  - tapecrypt.ekm.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports RV(would_change) per file and the aliases that would be lost, and fails like the real run would.
  diff_mode:
    support: full
    details:
      - The diff lists file names, SHA-256 hashes and the keystore's alias ranges, never key material.
  safe_file_operations:
    support: full
  idempotent:
    support: full
options:
  method:
    description:
      - V(replace) restores the set's files, replacing the current ones (the checks above keep keys from being lost).
      - V(add_missing) adds to the existing keystore at O(keystore_path) the keys of the set it lacks, and does
        nothing else. The keystore must exist and open with O(password), which must be the set's password too (the
        set's entries are copied sealed as they are). O(config_path), O(keygroups_path) and O(drivetable_path) are
        not allowed; O(allow_key_loss) does not apply, since no key is ever dropped or replaced.
      - With V(add_missing), a set that fails verification is refused like any other; when its manifest can still be
        read, the message and RV(aliases_missing) name the keys it records that the keystore lacks.
    type: str
    choices: [replace, add_missing]
    default: replace
    version_added: 0.2.0
  source:
    description:
      - Path of the backup set directory to restore, for example C(/srv/ekm-backup/dc1/ekm1/20260131T120000Z).
      - Mutually exclusive with O(dest); one of the two is required.
    type: path
  dest:
    description:
      - The backup destination given to M(tapecrypt.ekm.backup); the set is chosen under C(<dest>/<site>/<host>/)
        (C(<from_host>) with O(from_host)) by O(set).
    type: path
  site:
    description:
      - Site label of the server being restored. The set's manifest must name this site; with O(dest), the set is
        chosen under C(<dest>/<site>/).
    type: str
    required: true
  host:
    description:
      - Name of the server being restored. The set's manifest must name this server (or O(from_host)); a set of
        another server, given as O(source) or copied under this server's directory, is refused.
    type: str
    required: true
  from_host:
    description:
      - Restore the set of another server of the same site on purpose, for example to rebuild a redundant server from
        the backup of its primary. The set's manifest must name this server; with O(dest), its sets are searched.
      - Such a restore never drops keys, whatever O(allow_key_loss) says; the set must hold every key of the current
        keystore.
    type: str
  set:
    description:
      - With O(dest), which set to restore. V(latest) is the newest verified set; otherwise the set's directory name,
        for example V(20260131T120000Z).
      - When the newest set fails verification, the task fails instead of falling back to an older set; name an older
        set explicitly to use it.
    type: str
    default: latest
  keystore_path:
    description:
      - Where the set's keystore is restored to.
    type: path
    required: true
  config_path:
    description:
      - Where the set's C(KeyManagerConfig.properties) is restored to. Without it, that file is not restored.
    type: path
  keygroups_path:
    description:
      - Where the set's C(KeyGroups.xml) is restored to. Without it, that file is not restored.
    type: path
  drivetable_path:
    description:
      - Where the set's drive table is restored to. Without it, that file is not restored.
    type: path
  password:
    description:
      - The password of the keystore in the set (the keystore password at the time of the backup). Never logged.
    type: str
    required: true
  allow_key_loss:
    description:
      - Restore even when the set lacks aliases the current keystore holds, holds different keys under some of them,
        or the current keystore cannot be read to tell. Ignored with O(from_host). Those keys are then gone from the server; with O(backup=true)
        they remain in the pre-restore copy.
    type: bool
    default: false
  ledger_aliases:
    description:
      - Key aliases that cartridges need, according to the key-usage ledger (M(tapecrypt.ekm.ledger) with
        O(tapecrypt.ekm.ledger#module:count_by_alias=true)). A set that lacks any of them is refused, naming them, even
        on a server without a keystore, where nothing else could object.
    type: list
    elements: str
    default: []
  allow_cartridge_key_loss:
    description:
      - Restore even when the set lacks aliases of O(ledger_aliases). Independent of O(allow_key_loss), which is about
        the keys of the current keystore.
    type: bool
    default: false
  backup:
    description:
      - Keep every file that is replaced as a copy beside it, C(<path>.<UTC timestamp>.bak), written and flushed
        before the first file is replaced. The copies are returned in RV(backup_files).
      - A copy beside the file, rather than a new backup set, is kept because it works whatever state the current
        files are in, including a keystore that no longer opens with the password.
    type: bool
    default: true
  keep_copies:
    description:
      - After the restore, keep at most this many copies of each restored configuration, key-group and drive-table
        file beside it, newest first; older ones are removed. C(null) removes none.
      - Copies of the keystore are never removed here, least of all the one a restore with O(allow_key_loss=true)
        keeps; M(tapecrypt.ekm.backup) bounds keystore copies only when a verified set and the keystore both hold
        every entry of a copy.
    type: int
    default: 5
notes:
  - A file the set records as absent (or did not back up) is left as it is on the server, with a warning.
  - New files are created with mode C(0600) and existing ones keep their mode, owner and group, unless O(mode),
    O(owner) or O(group) say otherwise. These apply to every restored file.
seealso:
  - module: tapecrypt.ekm.backup
  - module: tapecrypt.ekm.sync
'''

EXAMPLES = r'''
- name: Show what restoring the newest backup of ekm1 would change
  tapecrypt.ekm.restore:
    dest: /srv/ekm-backup
    site: dc1
    host: ekm1
    keystore_path: /opt/ekm/keystore/EKMKeys.jck
    config_path: /opt/ekm/KeyManagerConfig.properties
    keygroups_path: /opt/ekm/KeyGroups.xml
    drivetable_path: /opt/ekm/filedrive.table
    password: "{{ vault_ekm_keystore_password }}"
  check_mode: true
  register: ekm_restore_plan

- name: Add the keys of the lost primary's newest set that this redundant server lacks, nothing else
  tapecrypt.ekm.restore:
    method: add_missing
    dest: /srv/ekm-backup
    site: dc1
    host: ekm2
    from_host: ekm1
    keystore_path: /opt/ekm/keystore/EKMKeys.jck
    password: "{{ vault_ekm_keystore_password }}"
    owner: ekm
    group: ekm

- name: Restore a chosen set, as the EKM user
  tapecrypt.ekm.restore:
    source: /srv/ekm-backup/dc1/ekm1/20260131T120000Z
    site: dc1
    host: ekm1
    keystore_path: /opt/ekm/keystore/EKMKeys.jck
    config_path: /opt/ekm/KeyManagerConfig.properties
    keygroups_path: /opt/ekm/KeyGroups.xml
    drivetable_path: /opt/ekm/filedrive.table
    password: "{{ vault_ekm_keystore_password }}"
    owner: ekm
    group: ekm
'''

RETURN = r'''
set_path:
  description: The backup set that was restored (or checked).
  returned: success
  type: str
  sample: /srv/ekm-backup/dc1/ekm1/20260131T120000Z
manifest:
  description: The set's manifest, without its HMAC.
  returned: success
  type: dict
would_change:
  description: For each file of the set that has a target, whether it differs from the current file (and so was, or
    in check mode would be, replaced).
  returned: when the set was verified
  type: dict
  sample: {EKMKeys.jck: true, KeyManagerConfig.properties: false}
changed_files:
  description: Target paths replaced by this run (in check mode, that would be replaced).
  returned: when the set was verified
  type: list
  elements: str
aliases_lost:
  description: Aliases of the current keystore that the set lacks, compressed into ranges.
  returned: when the set was verified
  type: list
  elements: str
  sample: [DCA201-2FF]
aliases_replaced:
  description: Aliases under which the set holds a different key than the current keystore. With
    O(method=add_missing) these are the conflicts that refused the task.
  returned: when the set was verified
  type: list
  elements: str
aliases_missing:
  description: With O(method=add_missing) and a set that fails verification, the aliases its manifest records that the
    keystore lacks, compressed into ranges; no keystore or set this task can read holds them.
  returned: when the set cannot be used
  type: list
  elements: str
  sample: [DCA201-2FF]
ledger_aliases_missing:
  description: Aliases of O(ledger_aliases) (keys that cartridges need) that the set lacks.
  returned: when the set was verified
  type: list
  elements: str
  sample: [dca000000000000000007]
aliases_gained:
  description: Aliases the set holds that the current keystore lacks (with O(method=add_missing), the keys added, or in
    check mode that would be added).
  returned: when the set was verified
  type: list
  elements: str
backup_files:
  description: The pre-restore copies, by file name.
  returned: success
  type: dict
  sample: {EKMKeys.jck: /opt/ekm/keystore/EKMKeys.jck.20260131T120500123456Z.bak}
removed_copies:
  description: Older copies of restored files (never of the keystore) that O(keep_copies) removed.
  returned: success
  type: list
  elements: str
  sample: [/opt/ekm/KeyGroups.xml.20260101T120500123456Z.bak]
not_restored:
  description: Files in the set that were not restored because no target path was given for them.
  returned: success
  type: list
  elements: str
not_in_set:
  description: Target paths the set has no file for; they were left as they are.
  returned: success
  type: list
  elements: str
recovered:
  description: A restore that a kill interrupted between its renames, which this run completed (V(completed)) or
    undid (V(rolled_back), when a staged file was lost) before anything else.
  returned: when there was one
  type: dict
  sample: {action: completed, txid: 20260131T120501-1a2b3c4d, files: [/opt/ekm/KeyGroups.xml]}
interrupted:
  description: In check mode, an interrupted restore that the next run that is not in check mode completes first.
  returned: when there is one
  type: dict
removed_stray_files:
  description: Temporary files that killed tapecrypt.ekm runs left beside the files (only names starting with
    C(.tapecrypt-); EKM's own temporary files are never touched).
  returned: when there were any
  type: list
  elements: str
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _copies, _files, _ledger


def plan_result(plan):
    return dict(
        set_path=plan.set_path,
        manifest=_backup.public_manifest(plan.manifest),
        would_change=plan.would_change,
        changed_files=[f['target'] for f in plan.files if f['change']],
        aliases_lost=plan.aliases_lost,
        aliases_replaced=plan.aliases_replaced,
        aliases_gained=plan.aliases_gained,
        not_restored=plan.skipped,
        not_in_set=plan.not_in_set,
        backup_files={},
        removed_copies=[],
    )


ARGUMENT_SPEC = dict(
    _backup.FILE_OPTIONS,
    method=dict(type='str', choices=['replace', 'add_missing'], default='replace'),
    source=dict(type='path'),
    dest=dict(type='path'),
    site=dict(type='str', required=True),
    host=dict(type='str', required=True),
    from_host=dict(type='str'),
    set=dict(type='str', default='latest'),
    password=dict(type='str', required=True, no_log=True),
    allow_key_loss=dict(type='bool', default=False),
    ledger_aliases=dict(type='list', elements='str', default=[], no_log=False),
    allow_cartridge_key_loss=dict(type='bool', default=False),
    backup=dict(type='bool', default=True),
    keep_copies=dict(type='int', default=_copies.DEFAULT_KEEP),
)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[('source', 'dest')],
        required_one_of=[('source', 'dest')],
        add_file_common_args=True,
        supports_check_mode=True,
    )
    p = module.params
    targets = _backup.file_paths(p)
    add_missing = p['method'] == 'add_missing'
    if add_missing:
        others = [k + '_path' for k in _backup.FILE_KINDS if k != 'keystore' and targets[k]]
        if others:
            module.fail_json(msg='method add_missing only adds keys to the keystore; %s cannot be given with it. Nothing '
                                 'was changed.' % ', '.join(others))
    earlier = {}
    set_path = None
    try:
        earlier = _backup.finish_interrupted(targets, module.check_mode)
        set_path = p['source'] or _backup.find_set(p['dest'], p['site'], p['from_host'] or p['host'], p['set'])
        owner = (p['site'], p['host'], p['from_host'])
        if add_missing:
            plan = _backup.plan_add_missing(set_path, targets['keystore'], p['password'], owner=owner)
        else:
            plan = _backup.plan_restore(set_path, targets, p['password'], p['allow_key_loss'], owner=owner)
    except (_backup.BackupError, _files.FileError) as exc:
        extra = dict(set_path=set_path) if set_path else {}
        if getattr(exc, 'aliases_missing', None) is not None:
            extra['aliases_missing'] = exc.aliases_missing
        module.fail_json(msg=str(exc), changed=bool(earlier.get('recovered')), **dict(earlier, **extra))
    # With add_missing the keys the current keystore keeps count as well: nothing is dropped.
    missing, ledger_refusal = _ledger.restore_refusal(plan.set_path, plan.set_aliases + plan.current_aliases,
                                                      p['ledger_aliases'], p['allow_cartridge_key_loss'])
    result = plan_result(plan)
    result.update(earlier, ledger_aliases_missing=missing)
    if ledger_refusal:
        plan.refusal = ' '.join(part for part in (plan.refusal, ledger_refusal) if part)
    elif missing:
        plan.warnings.append('allow_cartridge_key_loss is true: the set lacks keys that cartridges need (%s).'
                             % ', '.join(missing[:10]))
    if plan.refusal:
        module.fail_json(msg=plan.refusal, **result)
    result['changed'] = bool(plan.changed_names or earlier.get('recovered'))
    for warning in plan.warnings:
        module.warn(warning)
    if earlier.get('interrupted'):
        module.warn('A previous restore was interrupted; the next run that is not in check mode completes it (or undoes '
                    'it) first: %s.' % ', '.join(earlier['interrupted']['files']))
    if not module.check_mode and plan.changed_names:
        install(module, plan, result)
    for f in plan.files:
        # Attributes apply to every restored file, changed or not, so a second run has nothing left to do.
        if module.check_mode and f['current'] is None:
            continue
        file_args = module.load_file_common_arguments(p, path=f['target'])
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
    if module._diff and plan.changed_names:
        result['diff'] = dict(before_header='current files', after_header=plan.set_path,
                              before=_backup.diff_text(plan, after=False), after=_backup.diff_text(plan, after=True))
    module.exit_json(**result)


def install(module, plan, result):
    """Put the set's changed files in place, owner, group and mode set before each rename."""
    p = module.params
    try:
        dummy, result['backup_files'] = _backup.apply_restore(
            plan, backup=p['backup'], attributes=_files.FileAttributes.from_params(p),
            prepare=lambda staged: module.set_fs_attributes_if_different(
                module.load_file_common_arguments(p, path=staged), False))
    except (_backup.BackupError, _files.FileError) as exc:
        # A failure after files were replaced still reports the change.
        result['changed'] = bool(getattr(exc, 'changed', False) or result.get('recovered'))
        module.fail_json(msg=str(exc), **result)
    result['removed_copies'] = []
    for f in plan.files:
        # Never a keystore copy: the one this restore just kept may hold the only copy of keys it gave up.
        if f['change'] and f['kind'] != 'keystore':
            with _files.DirLock(f['real']):
                result['removed_copies'] += _copies.prune(f['real'], p['keep_copies'])[0]


if __name__ == '__main__':
    main()
