#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: ledger
short_description: Keep and query the key-usage ledger of EKM cartridges
version_added: 0.2.0
description:
  - The key-usage ledger keeps every EKM metadata (key usage) record ever collected, which key aliases each cartridge
    (VolSer) needs, after EKM itself has rotated the records away. EKM keeps only its current and previous metadata
    file.
  - The ledger is one append-only JSON Lines file with a C(<path>.sha256) checksum file beside it; see
    C(docs/health-and-ledger.md) for the format and why it is not a database.
  - With O(records) (from M(tapecrypt.ekm.server_info)) or O(merge_from), the records the ledger does not hold yet are
    appended; records it holds already are skipped, so collecting the same records twice changes nothing. Lines are
    never changed or removed.
  - Without them the module only reads, and answers the queries O(volser), O(alias) and O(keystore_aliases).
  - An append to a ledger that does not match its checksum file is refused. Something else changed it, or an earlier
    append was interrupted after writing and before the checksum was renewed. Remove the checksum file to accept the
    ledger as it is.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - tapecrypt.ekm.attributes
  - tapecrypt.ekm.attributes.action_group
attributes:
  diff_mode:
    support: none
    details:
      - The result says how many records were (or would be) added.
  safe_file_operations:
    support: partial
    details:
      - Records are appended (and fsynced) to the ledger, never rewritten; a crash while appending leaves at most one
        torn last line, which is ignored. The checksum file is replaced atomically.
options:
  path:
    description: The ledger file. Its directory must exist; the file is created (mode V('0600')) when missing.
    type: path
    required: true
  records:
    description:
      - Metadata records to add, as RV(tapecrypt.ekm.server_info#module:metadata.records) returns them (C(volser),
        C(key_alias_1), C(key_alias_2), C(dki), C(drive_serial), C(wwn), C(created), C(extra)).
      - Aliases are kept in lower case, as JCEKS keeps them.
    type: list
    elements: dict
  server:
    description: The EKM server the O(records) come from (its inventory name); kept with each record.
    type: str
  position:
    description:
      - The metadata position after O(records) (RV(tapecrypt.ekm.server_info#module:metadata.position)), kept for
        O(server) so that the next collection reads on from there. Recorded only together with new records (or the
        server's first position), so a collection that finds nothing new changes nothing.
    type: dict
  merge_from:
    description:
      - Another ledger file on the same host (a copy from the controller, or a backup destination's) whose records are
        added where missing. Its checksum file must match it, or the task fails.
    type: path
  volser:
    description: Return in RV(aliases) the aliases the cartridge with this VolSer needs.
    type: str
  alias:
    description: Return in RV(volsers) the VolSers of the cartridges that use this alias.
    type: str
  keystore_aliases:
    description: Return in RV(never_seen) those of these aliases that no record names.
    type: list
    elements: str
  list_aliases:
    description: Return RV(aliases_used), every alias a record names with its VolSers.
    type: bool
    default: false
  count_by_alias:
    description:
      - Return RV(cartridges_per_key), every alias a record names with the number of VolSers that use it; a much
        smaller result than RV(aliases_used) for a large ledger.
    type: bool
    default: false
notes:
  - Run it where the ledger is, usually on the controller with C(delegate_to=localhost).
seealso:
  - module: tapecrypt.ekm.server_info
'''

EXAMPLES = r'''
- name: Read this server's new key usage records
  tapecrypt.ekm.server_info:
    config_path: "{{ ekm_config_path }}"
    audit: false
    metadata_position: "{{ ledger_before.positions[inventory_hostname] | default(omit) }}"
  register: usage

- name: Add them to the ledger on the controller
  tapecrypt.ekm.ledger:
    path: /srv/ekm-ledger/dc1-key-ledger.jsonl
    records: "{{ usage.metadata.records }}"
    server: "{{ inventory_hostname }}"
    position: "{{ usage.metadata.position }}"
  delegate_to: localhost

- name: Which keys does cartridge VOL001 need?
  tapecrypt.ekm.ledger:
    path: /srv/ekm-ledger/dc1-key-ledger.jsonl
    volser: VOL001
  delegate_to: localhost
  register: needs
'''

RETURN = r'''
ledger:
  description: The ledger after the run (in check mode, as it would be).
  returned: always
  type: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /srv/ekm-ledger/dc1-key-ledger.jsonl
    exists:
      description: Whether the file exists.
      type: bool
      sample: true
    records:
      description: Distinct key usage records.
      type: int
      sample: 100000
    volsers:
      description: Distinct VolSers.
      type: int
      sample: 8000
    aliases:
      description: Distinct aliases named.
      type: int
      sample: 512
    servers:
      description: Servers whose records were collected.
      type: list
      elements: str
      sample: [ekm1, ekm2]
    collected:
      description: When each server was last collected (UTC).
      type: dict
      sample: {ekm1: '2026-11-30T10:00:00Z'}
    bad_lines:
      description: Lines that could not be read (a torn last line after a crash, for example).
      type: int
      sample: 0
    checksum_ok:
      description: Whether C(<path>.sha256) matches the file (null when the file does not exist).
      type: bool
      sample: true
added:
  description: Records (and positions) appended by this run, or that would be in check mode.
  returned: always
  type: int
  sample: 10
positions:
  description: The last collection position of each server, for O(position) of the next run's server_info.
  returned: always
  type: dict
  sample: {ekm1: {inode: 131075, offset: 2048, head: 0a1b2c3d4e5f6071}}
aliases:
  description: The aliases the cartridge O(volser) needs.
  returned: when O(volser) is given
  type: list
  elements: str
  sample: [dca000000000000000001]
volsers:
  description: The VolSers of the cartridges that use O(alias).
  returned: when O(alias) is given
  type: list
  elements: str
  sample: [VOL001, VOL004]
never_seen:
  description: The O(keystore_aliases) that no record names.
  returned: when O(keystore_aliases) is given
  type: list
  elements: str
  sample: [dca000000000000000009]
cartridges_per_key:
  description: Every alias a record names, with the number of VolSers that use it.
  returned: when O(count_by_alias=true)
  type: dict
  sample: {dca000000000000000001: 2}
aliases_used:
  description: Every alias a record names, with the VolSers that use it.
  returned: when O(list_aliases=true)
  type: dict
  sample: {dca000000000000000001: [VOL001, VOL004]}
'''

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ledger


def _update(module, ledger):
    p = module.params
    lines = []
    if p['merge_from']:
        source = _ledger.Ledger.load(p['merge_from'])
        if not source.exists:
            module.fail_json(msg=f"the ledger to merge from, {p['merge_from']}, does not exist")
        problem = _ledger.verify_checksum(p['merge_from'])
        if problem:
            module.fail_json(msg=f"refusing to merge from {p['merge_from']}: {problem}. Nothing was changed.")
        lines += ledger.new_lines(source.uses)
    if p['records'] is not None:
        lines += ledger.new_lines(p['records'], p['server'], p['position'])
    will_write = bool(lines) or not ledger.exists
    if will_write and ledger.exists and os.path.exists(_ledger.checksum_path(p['path'])):
        problem = _ledger.verify_checksum(p['path'])
        if problem:
            module.fail_json(msg=f'{problem}: the ledger was changed by something else than this module, or an append '
                                 f'was interrupted. Compare it with a backup copy; to accept it as it is, remove '
                                 f"{_ledger.checksum_path(p['path'])}. Nothing was changed.")
    if will_write and not module.check_mode:
        ledger.append(lines)
    return len(lines), will_write


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            records=dict(type='list', elements='dict'),
            server=dict(type='str'),
            position=dict(type='dict'),
            merge_from=dict(type='path'),
            volser=dict(type='str'),
            alias=dict(type='str'),
            keystore_aliases=dict(type='list', elements='str', no_log=False),
            list_aliases=dict(type='bool', default=False),
            count_by_alias=dict(type='bool', default=False),
        ),
        required_by={'position': 'server'},
        supports_check_mode=True,
    )
    p = module.params
    try:
        ledger = _ledger.Ledger.load(p['path'])
        added, changed = 0, False
        if p['records'] is not None or p['merge_from']:
            added, changed = _update(module, ledger)
        summary = ledger.summary()
        summary['exists'] = ledger.exists or changed
        summary['checksum_ok'] = (_ledger.verify_checksum(p['path']) is None) if ledger.exists else None
        result = {'changed': changed, 'ledger': summary, 'added': added, 'positions': ledger.positions}
        if p['volser'] is not None:
            result['aliases'] = ledger.aliases_for_volser(p['volser'])
        if p['alias'] is not None:
            result['volsers'] = ledger.volsers_for_alias(p['alias'])
        if p['keystore_aliases'] is not None:
            result['never_seen'] = ledger.never_seen(p['keystore_aliases'])
        if p['list_aliases'] or p['count_by_alias']:
            used = ledger.aliases_used()
            if p['list_aliases']:
                result['aliases_used'] = used
            if p['count_by_alias']:
                result['cartridges_per_key'] = {alias: len(volsers) for alias, volsers in used.items()}
    except _ledger.LedgerError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
