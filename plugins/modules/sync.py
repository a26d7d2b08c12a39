#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: sync
short_description: Copy an EKM primary's keystore, KeyGroups.xml and drive table to a redundant EKM, never forking a key
version_added: 0.1.0
description:
  - Runs against a redundant EKM server and makes its keystore, C(KeyGroups.xml) and drive table copies of the
    primary's (O(primary)), as the EKM guide asks after every configuration change on the primary. The files travel
    through the controller; only files that differ travel.
  - "B(Keys are never forked.) Every alias in the redundant's keystore must exist on the primary with the same key:
    byte-equal entries, or, where the bytes differ, the same key fingerprint (those entries alone are decrypted, on
    each server). An alias only the redundant holds, or one holding a different key, is a conflict: the task fails,
    names the aliases and changes nothing. O(force) never applies to keys."
  - "C(KeyGroups.xml) and the drive table are opaque files that EKM rewrites itself. A sync state file on the redundant
    (O(sync_state_path)) records the SHA-256 of what the last sync installed, which tells a change made on the primary
    from one made locally on the redundant. A local change (or, before the first sync, any difference) is a conflict
    unless O(force=true); a file replaced over a local change is always kept as a backup."
  - "The install is all or nothing: every changed file is first written complete beside its target and verified (the
    keystore's integrity with the password, its digest against the primary's, the subset rule again), then all are
    renamed into place, and the sync state is written last. A journal kept during the renames lets the next run
    complete (or undo) an install that a crash interrupted, so the redundant holds a complete old or a complete new
    set, never a mix. Afterwards the redundant's keystore digest must equal the primary's, or the task fails."
  - In check mode the module is a drift report (RV(in_sync), RV(drift), RV(conflicts)) and changes nothing.
  - The primary is reached from the action plugin with the connection settings of its inventory host, as
    C(delegate_to) would; nothing needs to run on the controller beyond Ansible.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
requirements:
  - The Python library C(cryptography) on both servers, when keys whose stored bytes differ have to be decrypted and
    compared (keystores copied by this module never need it). The task fails with a message saying so when it is
    missing.
extends_documentation_fragment:
  - ansible.builtin.files
  - tapecrypt.ekm.attributes
  - tapecrypt.ekm.attributes.action_group
attributes:
  check_mode:
    support: full
    details:
      - Check mode reports drift and conflicts and changes nothing, not even the completion of an interrupted sync.
  diff_mode:
    support: full
    details:
      - The diff names the files that change with their SHA-256, entry counts and the aliases added; never key bytes.
  safe_file_operations:
    support: full
  idempotent:
    support: full
  action:
    description: Has a corresponding action plugin, which runs on the controller.
    support: full
options:
  primary:
    description:
      - Inventory hostname of the primary EKM server. Its connection variables (C(ansible_host),
        C(ansible_connection), C(ansible_user), become settings, ...) are taken from the inventory.
      - It must not be the host the task runs against.
    type: str
    required: true
  keystore_path:
    description:
      - Path of the JCEKS keystore on this redundant server, and on the primary unless O(primary_keystore_path) is set.
      - A primary without a keystore is an error (nothing to sync from).
    type: path
    required: true
  keygroups_path:
    description:
      - Path of C(KeyGroups.xml) on this redundant server, and on the primary unless O(primary_keygroups_path) is set.
      - When not set, the file is not synced. When the primary has no such file, it is not synced either and the
        redundant's file, if any, is left alone.
    type: path
  drivetable_path:
    description:
      - Path of EKM's drive table (for example C(filedrive.table)) on this redundant server, and on the primary unless
        O(primary_drivetable_path) is set. Treated like O(keygroups_path).
    type: path
  primary_keystore_path:
    description: Path of the keystore on the primary when it differs from O(keystore_path).
    type: path
  primary_keygroups_path:
    description: Path of C(KeyGroups.xml) on the primary when it differs from O(keygroups_path).
    type: path
  primary_drivetable_path:
    description: Path of the drive table on the primary when it differs from O(drivetable_path).
    type: path
  password:
    description:
      - Password of the keystore currently on this redundant server (store password, also used as key password to
        compare keys whose entries differ). A wrong password fails the task and changes nothing.
      - Never logged, never passed on a command line.
    type: str
    required: true
  primary_password:
    description:
      - Password of the primary's keystore, when it differs from O(password) (for example after the primary's store
        password was changed). The copied keystore is a byte copy, so after the sync the redundant's keystore opens
        with this password; update the redundant EKM's configuration to match.
      - A primary keystore that fails its integrity check with this password is never copied.
    type: str
  force:
    description:
      - Replace C(KeyGroups.xml) and the drive table on the redundant even when they were changed locally since the last
        sync (or differ before the first sync). A file replaced that way is always backed up, whatever O(backup) says.
      - Never applies to keys, since a keystore conflict always fails the task.
    type: bool
    default: false
  backup:
    description:
      - Keep a timestamped copy (C(<file>.<UTC time>.bak), beside it) of every file the sync replaces.
    type: bool
    default: true
  keep_copies:
    description:
      - Keep at most this many copies of each replaced key-group and drive-table file beside it, newest first; older
        ones (also C(<file>.<pid>.<time>~) copies of older releases) are removed after the install. C(null) removes
        none.
      - Copies of the keystore are never removed here; M(tapecrypt.ekm.backup) bounds them (its O(keep_copies)) once a
        verified backup set and the keystore both hold every entry of a copy.
    type: int
    default: 5
  sync_state_path:
    description:
      - Where the sync state is kept on the redundant server. Default is C(.tapecrypt-sync.json) in the keystore's
        directory; the journal of an install in progress sits beside it with the suffix C(.journal).
    type: path
notes:
  - Paths are those of the EKM files on each server; the files pass through the controller's private temporary
    directory and the redundant's Ansible temporary directory, never through results or logs.
  - The options O(owner), O(group), O(mode) and the other file options apply to every synced file on the redundant;
    when not given, a replaced file keeps its owner and mode, and a new file is created with mode C(0600).
  - Host names and paths are compared, not servers; do not point O(primary) at an alias of the redundant itself.
seealso:
  - module: tapecrypt.ekm.keystore
  - module: tapecrypt.ekm.keystore_info
  - module: tapecrypt.ekm.backup
'''

EXAMPLES = r'''
- name: Copy the primary's keys and key groups to this redundant EKM
  tapecrypt.ekm.sync:
    primary: "{{ groups['ekm_primary'][0] }}"
    keystore_path: "{{ ekm_keystore_path }}"
    keygroups_path: "{{ ekm_keygroups_path }}"
    drivetable_path: "{{ ekm_drivetable_path }}"
    password: "{{ ekm_seed.keystore_password }}"
    owner: ekm
    group: ekm
  register: ekm_sync
  notify: Restart EKM

- name: Drift report for cron or AWX (changes nothing)
  tapecrypt.ekm.sync:
    primary: ekm1.example.com
    keystore_path: /opt/ekm/keystore/EKMKeys.jck
    keygroups_path: /opt/ekm/KeyGroups.xml
    password: "{{ vault_ekm_keystore_password }}"
  check_mode: true
  register: ekm_drift

- name: Replace a KeyGroups.xml that was edited on the redundant by mistake (the edited one is backed up)
  tapecrypt.ekm.sync:
    primary: ekm1.example.com
    keystore_path: /opt/ekm/keystore/EKMKeys.jck
    keygroups_path: /opt/ekm/KeyGroups.xml
    password: "{{ vault_ekm_keystore_password }}"
    force: true
'''

RETURN = r'''
in_sync:
  description:
    - Whether the redundant holds the primary's files (after the run; in check mode, before it) and no conflict or
      interrupted install is pending.
  returned: always
  type: bool
  sample: true
drift:
  description:
    - Per synced file (C(keystore), C(keygroups), C(drivetable)), as found before any change.
    - C(status) is V(same), V(missing) (absent on the redundant), V(primary_changed) (the primary's is newer),
      V(local_change) (edited on the redundant since the last sync), V(untracked_difference) (differs and no sync
      record tells where the redundant's copy came from), V(not_on_primary) (not synced) or V(conflict) (keystore only).
  returned: always
  type: dict
  sample:
    keystore:
      status: primary_changed
      path: /opt/ekm/keystore/EKMKeys.jck
      primary_sha256: 4f1c...
      redundant_sha256: 9a0b...
      recorded_sha256: 9a0b...
conflicts:
  description:
    - What stops the sync; each item has C(file), C(kind) (V(extra_aliases), V(different_keys), V(primary_lost_keys),
      V(local_change) or V(untracked_difference)), C(reason) and, for the keystore, C(aliases) (compressed into ranges).
    - V(primary_lost_keys) replaces the first two when this server's keystore is the one the last sync copied from the
      primary. Then the primary lost those keys, and the advice is to restore the primary, not to move this keystore
      aside.
    - A conflict fails the task, in check mode too; the report is still returned.
  returned: always
  type: list
  elements: dict
  sample:
    - file: keystore
      kind: different_keys
      aliases: [DCA001-010]
      reason: this redundant server holds different keys than the primary under the same alias(es) ...
aliases_added:
  description: Aliases the redundant's keystore gains, compressed into EKM range syntax.
  returned: always
  type: list
  elements: str
  sample: [DCA201-264]
changed_files:
  description: Paths on the redundant that were (in check mode, would be) replaced.
  returned: always
  type: list
  elements: str
  sample: [/opt/ekm/keystore/EKMKeys.jck]
backup_files:
  description: Backup copies of the replaced files.
  returned: always
  type: list
  elements: str
  sample: [/opt/ekm/keystore/EKMKeys.jck.20261126T100000123456Z.bak]
removed_copies:
  description: Older copies of the replaced files that O(keep_copies) removed.
  returned: always
  type: list
  elements: str
  sample: [/opt/ekm/KeyGroups.xml.20261001T100000123456Z.bak]
forced:
  description: Files replaced despite a local change because of O(force=true).
  returned: when O(force=true) overrode a local change
  type: list
  elements: str
  sample: [keygroups]
primary_digest:
  description: Keystore digest on the primary (SHA-256 over the sorted C(alias:entry_sha256) lines).
  returned: always
  type: str
redundant_digest:
  description: Keystore digest on the redundant after the run (before it, in check mode); equals RV(primary_digest) after a sync.
  returned: always
  type: str
last_sync:
  description: When the last sync that changed something on this redundant finished (UTC), from the sync state.
  returned: when a sync state exists
  type: str
  sample: '2026-11-26T10:00:00Z'
recovered:
  description: An install that a crash interrupted and this run completed (V(completed)) or undid (V(rolled_back)).
  returned: when there was one
  type: dict
interrupted:
  description: In check mode, an interrupted install that the next real run will complete.
  returned: when there is one
  type: dict
removed_stray_files:
  description: Staged and temporary files that killed tapecrypt.ekm runs left beside the synced files (only names
    starting with C(.tapecrypt-); EKM's own temporary files are never touched).
  returned: when there were any
  type: list
  elements: str
'''

from ansible.module_utils import basic
from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _sync
from ansible_collections.tapecrypt.ekm.plugins.module_utils._requirements import require_cryptography

ATTRIBUTE_OPTIONS = _sync.ATTRIBUTE_OPTIONS


def phase_request(module):
    """The phase the action plugin asked for: the ``_sync`` key of the raw module arguments.

    It is no option of the module (users never see or set it). The action plugin, which refuses it
    from a task, passes it beside the options and has ansible-core let the module ignore keys its
    argument spec does not know (``ignore_unknown_opts``); ``basic._load_params()`` is ansible-core's
    function for reading the arguments as they were sent.
    """
    request = basic._load_params().get(_sync.PHASE_KEY)
    if not isinstance(request, dict) or not request.get('phase'):
        module.fail_json(msg='tapecrypt.ekm.sync was run without its action plugin, which drives it in phases on both '
                             'servers; run it as a task (tapecrypt.ekm.sync). Nothing was changed.')
    return request


def main():
    module = AnsibleModule(
        argument_spec=_sync.ARGUMENT_SPEC,
        required_by=_sync.REQUIRED_BY,
        add_file_common_args=True,
        supports_check_mode=True,
    )

    def attributes(path, changed):
        file_args = module.load_file_common_arguments(module.params, path=path)
        return module.set_fs_attributes_if_different(file_args, changed)

    request = phase_request(module)
    if request.get('phase') == 'fingerprints':
        require_cryptography(module, 'to compare keys whose stored bytes differ between the servers')
    wants_attributes = any(module.params.get(k) is not None for k in ATTRIBUTE_OPTIONS)
    params = dict(module.params, **{_sync.PHASE_KEY: request})
    try:
        result = _sync.run_phase(params, module.check_mode, attributes if wants_attributes else None)
    except _sync.SyncError as exc:
        module.fail_json(msg=str(exc), **exc.result)
    module.exit_json(changed=bool(result.pop('changed', False)), **result)


if __name__ == '__main__':
    main()
