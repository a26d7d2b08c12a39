#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: backup
short_description: Make a verified backup set of an EKM server's keystore and files
version_added: 0.1.0
description:
  - Copies the four files of an IBM/Dell Encryption Key Manager (EKM) server, the keystore,
    C(KeyManagerConfig.properties), C(KeyGroups.xml) and the drive table, into a backup set
    C(<dest>/<site>/<host>/<YYYYmmddTHHMMSSZ>/) with a C(MANIFEST.json).
  - The set is written into a hidden C(.<name>.partial) directory and flushed to the device. Every file is then read
    back from the destination and compared with what was read from the server, and the keystore copy is opened with
    O(password) (its integrity check). Only then is the manifest written, marked verified, and the directory renamed
    to its final name. A directory without a valid, verified manifest, such as one left by a crash, is never taken
    for a backup set; staging directories older than an hour are removed by a later run.
  - When the newest verified set already holds the same files (same names and SHA-256 hashes, same absent files), no
    set is made and the task reports no change. The newest set's files are re-hashed for this; if they no longer
    match its manifest, a new set is made and a warning says why.
  - The manifest records each file's role, SHA-256 and size, the keystore's entry count, digest and alias ranges, and
    an HMAC keyed by O(password) that detects an altered manifest.
  - Files are written mode C(0600), directories C(0700), owned by the user the module runs as.
  - Back up to media that is not encrypted with the keys in this keystore; lost keys are lost tapes.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - tapecrypt.ekm.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff lists file names and hashes of the newest set and of the new one, never file contents.
  safe_file_operations:
    support: full
    details:
      - A set becomes visible only complete and verified (one directory rename); pruning renames a set away before
        removing it.
  idempotent:
    support: full
options:
  keystore_path:
    description:
      - Path of the EKM keystore. It must exist and open with O(password).
    type: path
    required: true
  config_path:
    description:
      - Path of C(KeyManagerConfig.properties). When the file does not exist, the set records it as absent.
    type: path
  keygroups_path:
    description:
      - Path of C(KeyGroups.xml). When the file does not exist, the set records it as absent.
    type: path
  drivetable_path:
    description:
      - Path of the drive table (for example C(filedrive.table)). When the file does not exist, the set records it as
        absent.
    type: path
  password:
    description:
      - The keystore password. The keystore is checked with it before it is copied and again in the set, and it keys
        the manifest's HMAC. Never logged.
    type: str
    required: true
  dest:
    description:
      - Existing, writable directory to hold the backups, on media that is not encrypted with these keys.
      - Refused when it lies inside one of O(protected_paths) or inside a directory of the backed-up files.
      - Required, with O(site) and O(host), unless O(verified_set) is given.
    type: path
  site:
    description:
      - Site label, the first directory level under O(dest) (the seed's C(site)). Required with O(dest).
    type: str
  host:
    description:
      - Server name, the second directory level under O(dest) (normally C(inventory_hostname)). Required with O(dest).
    type: str
  verified_set:
    description:
      - Make no backup set; only bound the copies beside the files (O(keep_copies)) with the backup set in this
        directory, which is verified completely first (manifest and its HMAC, every file's hash, the keystore opened
        with O(password)).
      - For sets made elsewhere, for example on the controller by the backup role's C(ekm_backup_where=controller),
        whose copy on this host the role passes here and removes afterwards.
      - A set that fails verification fails the task and no copy is removed.
    type: path
  keep:
    description:
      - Keep this many verified sets of this host and remove older ones. The newest set is never removed, and nothing
        is removed when making the new set failed. Directories that are not verified sets are never removed by this.
      - Default is to keep every set.
    type: int
  keep_copies:
    description:
      - After the set that holds the current files is verified, keep at most this many of the copies that replaced
        files left beside each backed-up file (C(<file>.<UTC time>.bak), and C(<file>.<pid>.<time>~) of older releases),
        newest first, and remove older ones.
      - A copy of the keystore is removed only when the current keystore and the verified set both hold every one of its
        entries byte for byte; a copy that holds a key found in neither (for example the one a restore with
        C(allow_key_loss) kept) always stays. Copies of the other files go by age.
      - V(0) keeps no copy that may go; C(null) removes none.
      - Only files on the host that runs this module are looked at. With backups made on the controller (the backup
        role's C(ekm_backup_where=controller)), the role runs this module on the EKM host a second time, with
        O(verified_set) naming a copy of the set just made, so the copies there are bounded by the same rule.
    type: int
    default: 5
  protected_paths:
    description:
      - Directories that O(dest) must lie outside of, such as the EKM home. The directories of the backed-up files
        are always protected this way.
    type: list
    elements: path
    default: []
notes:
  - The set's file names are the source files' names, so two of the files must not share a name.
  - Manifests written with another keystore password do not list as verified sets (their HMAC does not match), so
    after a password change the older sets are reported in RV(invalid_sets) and are never pruned.
seealso:
  - module: tapecrypt.ekm.restore
  - module: tapecrypt.ekm.keystore
'''

EXAMPLES = r'''
- name: Back up the primary EKM to the mounted backup disk, keeping 30 sets
  tapecrypt.ekm.backup:
    keystore_path: /opt/ekm/keystore/EKMKeys.jck
    config_path: /opt/ekm/KeyManagerConfig.properties
    keygroups_path: /opt/ekm/KeyGroups.xml
    drivetable_path: /opt/ekm/filedrive.table
    password: "{{ vault_ekm_keystore_password }}"
    dest: /srv/ekm-backup
    site: dc1
    host: "{{ inventory_hostname }}"
    keep: 30
    protected_paths:
      - /opt/ekm
  register: ekm_backup

- name: Show where the verified set is
  ansible.builtin.debug:
    msg: "{{ ekm_backup.set_path }} holds {{ ekm_backup.manifest.keystore.count }} keys"
'''

RETURN = r'''
removed_copies:
  description: Copies beside the backed-up files that O(keep_copies) removed. Empty in check mode.
  returned: always
  type: list
  elements: str
  sample: [/opt/ekm/KeyManagerConfig.properties.20260102T030405123456Z.bak]
kept_copies:
  description: Copies older than the newest O(keep_copies) that had to stay (keystore copies with keys found nowhere else).
  returned: always
  type: list
  elements: str
  sample: [/opt/ekm/keystore/EKMKeys.jck.20260102T030405123456Z.bak]
created:
  description: Whether a new set was made (in check mode, whether one would be). Always V(false) with O(verified_set).
  returned: always
  type: bool
  sample: true
set_path:
  description: The set that holds the current files, the new one or the unchanged newest one. In check mode with
    changes, V(null). With O(verified_set), that set.
  returned: always
  type: str
  sample: /srv/ekm-backup/dc1/ekm1/20260131T120000Z
manifest:
  description: The set's manifest, without its HMAC.
  returned: when RV(set_path) is set
  type: dict
  sample:
    format: 1
    site: dc1
    host: ekm1
    created: "2026-01-31T12:00:00.123456Z"
    verified: true
    files:
      EKMKeys.jck: {role: keystore, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, size: 84512,
                    source: /opt/ekm/keystore/EKMKeys.jck}
    absent:
      filedrive.table: {role: drivetable, source: /opt/ekm/filedrive.table}
    keystore: {file: EKMKeys.jck, count: 512, digest: 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0,
               ranges: [DCA001-200]}
sets:
  description: Paths of the verified sets of this host after the run, newest first. Empty with O(verified_set).
  returned: always
  type: list
  elements: str
pruned:
  description: Paths of the sets removed because of O(keep) (in check mode, that would be removed).
  returned: always
  type: list
  elements: str
invalid_sets:
  description: Set-like directories that are not usable sets, with the reason. They are never removed by this module.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The directory.
      type: str
    reason:
      description: Why it is not a verified set.
      type: str
removed_leftovers:
  description: Staging directories of crashed runs and half-removed sets that this run removed.
  returned: always
  type: list
  elements: str
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup, _copies, _files


def bound_copies(module, paths, result):
    """Prune the replaced-file copies beside the sources, once a verified set holds the current files."""
    keep = module.params['keep_copies']
    if keep is None or module.check_mode or not result['set_path']:
        return [], []
    set_keystore = os.path.join(result['set_path'], result['manifest']['keystore']['file'])
    try:
        return _copies.prune_beside_backup(paths, keep, module.params['password'], set_keystore)
    except _files.FileError as exc:
        result['warnings'].append('The backup set was made, but the copies beside the EKM files were not pruned: %s' % exc)
        return [], []


def bound_copies_with_set(module, paths):
    """O(verified_set): bound the copies beside the files with a set made elsewhere; no set is made."""
    p = module.params
    set_path = p['verified_set']
    try:
        manifest = _backup.verify_set(set_path, p['password'])[0]
    except _backup.BackupError as exc:
        module.fail_json(msg='%s No copy beside the EKM files was removed.' % exc)
    result = {'created': False, 'set_path': set_path, 'manifest': _backup.public_manifest(manifest), 'sets': [],
              'pruned': [], 'invalid_sets': [], 'removed_leftovers': [], 'removed_copies': [], 'kept_copies': []}
    if p['keep_copies'] is not None and not module.check_mode:
        set_keystore = os.path.join(set_path, manifest['keystore']['file'])
        try:
            result['removed_copies'], result['kept_copies'] = _copies.prune_beside_backup(
                paths, p['keep_copies'], p['password'], set_keystore)
        except _files.FileError as exc:
            module.fail_json(msg='The copies beside the EKM files were not pruned: %s' % exc)
    module.exit_json(changed=bool(result['removed_copies']), **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            _backup.FILE_OPTIONS,
            password=dict(type='str', required=True, no_log=True),
            dest=dict(type='path'),
            site=dict(type='str'),
            host=dict(type='str'),
            keep=dict(type='int'),
            keep_copies=dict(type='int', default=_copies.DEFAULT_KEEP),
            protected_paths=dict(type='list', elements='path', default=[]),
            verified_set=dict(type='path'),
        ),
        required_one_of=[('dest', 'verified_set')],
        mutually_exclusive=[('dest', 'verified_set'), ('keep', 'verified_set')],
        required_by={'dest': ('site', 'host')},
        supports_check_mode=True,
    )
    p = module.params
    if p['keep_copies'] is not None and p['keep_copies'] < 0:
        module.fail_json(msg='keep_copies must be 0 or more; got %d. Nothing was backed up.' % p['keep_copies'])
    paths = _backup.file_paths(p)
    if p['verified_set']:
        bound_copies_with_set(module, paths)
    try:
        result = _backup.backup(paths, p['password'], p['dest'], p['site'], p['host'], keep=p['keep'],
                                protected_paths=p['protected_paths'], check_mode=module.check_mode)
    except _backup.BackupError as exc:
        module.fail_json(msg=str(exc))
    result['removed_copies'], result['kept_copies'] = bound_copies(module, paths, result)
    result['changed'] = result['changed'] or bool(result['removed_copies'])
    for warning in result.pop('warnings'):
        module.warn(warning)
    diff = result.pop('diff')
    if module._diff and result['created']:
        result['diff'] = dict(before_header=diff.get('before_header', '(no verified set)'),
                              after_header=result['set_path'] or '(new set)', before=diff['before'], after=diff['after'])
    module.exit_json(**result)


if __name__ == '__main__':
    main()
