#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: server_info
short_description: Report an EKM server's service state, configuration drift, audit records and key usage records
version_added: 0.2.0
description:
  - Reads, on the EKM host, what tells whether an IBM/Dell Encryption Key Manager (EKM) server is serving and
    configured as the site's seed asks, and which keys it served for which cartridges.
  - B(Service) - whether a process runs with the configuration file O(config_path) on its command line, and whether
    a TCP connection to the key-serving port (C(TransportListener.tcp.port) of that file, or O(port)) succeeds.
  - B(Configuration) - each key of O(expected_settings) compared with the value Java reads from the file; a missing
    key or another value is drift. Keys that are not in O(expected_settings) are not compared, so pass the values
    the roles write (C(ekm_server_settings)), with C(symmetricKeySet) as it should be now (keys held back because
    they are not yet safe to serve are not drift).
  - B(Audit) - the audit records written since O(audit_position) (and at or after O(audit_since)), from the numbered
    files C(Audit.handler.file.directory)/C(Audit.handler.file.name).N, with a count per kind (sync failures,
    keystore errors, new drives, stops, keys served). See C(docs/health-and-ledger.md) for the record format.
  - B(Key usage) - the metadata records (drive serial, WWN, creation date, key aliases 1 and 2, DKi, VolSer) written
    since O(metadata_position), from the current and the previous metadata file.
  - Files are read from the given position, a line or a chunk at a time; at most O(limit) records of each kind are
    returned per run, and the returned position says where the next run goes on.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - tapecrypt.ekm.attributes.info_module
  - tapecrypt.ekm.attributes.action_group
options:
  config_path:
    description:
      - Path of EKM's C(KeyManagerConfig.properties). Relative paths in it (and C(FILE:) URLs) resolve against its
        directory.
    type: path
    required: true
  expected_settings:
    description:
      - The keys the seed asks for, with their values. Booleans compare as V(true)/V(false), numbers in decimal.
      - Values of keys whose names contain C(pass), C(pwd), C(secret) or C(token) are masked in the result.
    type: dict
    default: {}
  ignore_settings:
    description: Keys of O(expected_settings) not to compare.
    type: list
    elements: str
    default: []
  service:
    description: Check the service (process and port). With V(false) RV(service) is not returned.
    type: bool
    default: true
  check_process:
    description:
      - Look for the EKM process, a process with O(process_match) as one of its command-line arguments. With V(false)
        only the TCP connect decides.
    type: bool
    default: true
  process_match:
    description: The command-line argument that identifies the EKM process. Defaults to O(config_path).
    type: str
  probe_address:
    description: Address to connect to for the port check.
    type: str
    default: 127.0.0.1
  port:
    description: TCP port to check; V(0) reads C(TransportListener.tcp.port) from the configuration file.
    type: int
    default: 0
  connect_timeout:
    description: Seconds to wait for the TCP connect.
    type: float
    default: 3.0
  audit:
    description: Read the audit records.
    type: bool
    default: true
  audit_position:
    description:
      - Where the previous run stopped, RV(audit.position) of that run; records before it are not returned. Without
        it every audit file is read.
    type: dict
  audit_since:
    description: Only records with a timestamp at or after this ISO 8601 text (compared as text).
    type: str
  audit_directory:
    description: The audit directory; defaults to C(Audit.handler.file.directory) of the configuration file.
    type: path
  audit_name:
    description: The audit base name; defaults to C(Audit.handler.file.name) of the configuration file, else C(ekm_audit.log).
    type: str
  metadata:
    description: Read the key usage (metadata) records.
    type: bool
    default: true
  metadata_position:
    description: Where the previous run stopped, RV(metadata.position) of that run. Without it both files are read whole.
    type: dict
  metadata_path:
    description: The current metadata file; defaults to C(Audit.metadata.file.name) of the configuration file.
    type: path
  metadata_previous_path:
    description:
      - The previous metadata file. EKM's guide says that it keeps one but not its name; the default C(<metadata
        file>.1) is the stand-in's, unverified for the vendor's EKM.
    type: path
  metadata_elements:
    description:
      - XML element names of the metadata records, by field, over the defaults C(record=KeyUsageEvent),
        C(drive_serial=DriveSSN), C(wwn=DriveWWN), C(created=CreationDate), C(key_alias_1=KeyAlias1),
        C(key_alias_2=KeyAlias2), C(dki=DKi), C(volser=VolSer).
      - The guide documents the fields but not these names; the defaults are a guess. Compare them with a metadata
        file of your EKM.
    type: dict
    default: {}
  stat_paths:
    description:
      - Files whose existence and change times to report in RV(files), in one call; for instance EKM's start marker,
        keystore and configuration, which the P(tapecrypt.ekm.server#role) role compares to find an EKM that started
        before its files last changed.
    type: list
    elements: path
    default: []
  limit:
    description: At most this many audit records and this many metadata records per run.
    type: int
    default: 10000
notes:
  - The module reads files that EKM's user owns; run it with C(become) where needed.
seealso:
  - module: tapecrypt.ekm.ledger
  - module: tapecrypt.ekm.config
'''

EXAMPLES = r'''
- name: Check an EKM server against the seed
  tapecrypt.ekm.server_info:
    config_path: /opt/ekm/KeyManagerConfig.properties
    expected_settings: "{{ ekm_server_settings }}"
    audit_since: "{{ last_check_time }}"
  register: ekm_info
  no_log: true   # expected_settings holds the keystore password

- name: Fail when EKM is not serving
  ansible.builtin.assert:
    that: ekm_info.service.state == 'running'
    fail_msg: "EKM on {{ inventory_hostname }} is down: {{ ekm_info.service.reasons | join('; ') }}"

- name: Collect key usage records since the last collection
  tapecrypt.ekm.server_info:
    config_path: /opt/ekm/KeyManagerConfig.properties
    audit: false
    metadata_position: "{{ previous_position | default(omit) }}"
  register: ekm_usage
'''

RETURN = r'''
service:
  description: Whether EKM runs and serves.
  returned: when O(service=true)
  type: dict
  contains:
    state:
      description: V(running) when the process was found (if looked for) and the port accepted a connection, else V(down).
      type: str
      sample: running
    reasons:
      description: Why the state is V(down).
      type: list
      elements: str
      sample: ['cannot connect to 127.0.0.1:3801: Connection refused']
    pids:
      description: PIDs of the EKM process(es) found.
      type: list
      elements: int
      sample: [4242]
    port:
      description: The TCP check, C(address), C(port), C(reachable), C(error).
      type: dict
      sample: {address: 127.0.0.1, port: 3801, reachable: true, error: null}
config:
  description: The configuration file against O(expected_settings).
  returned: always
  type: dict
  contains:
    path:
      description: The file.
      type: str
      sample: /opt/ekm/KeyManagerConfig.properties
    exists:
      description: Whether the file exists.
      type: bool
      sample: true
    drift:
      description:
        - One item per managed key that is missing (C(actual) null) or differs, with C(key), C(status) (V(missing) or
          V(differs)), C(expected) and C(actual).
      type: list
      elements: dict
      sample: [{key: TransportListener.tcp.port, status: differs, expected: '3801', actual: '3802'}]
    in_sync:
      description: True when RV(config.drift) is empty.
      type: bool
      sample: true
audit:
  description: Audit records since the position.
  returned: when O(audit=true)
  type: dict
  contains:
    directory:
      description: The audit directory read, or null when none is configured.
      type: str
      sample: /opt/ekm/audit
    records:
      description: >-
        Records, oldest first: C(type), C(timestamp), C(fields) (name to value), C(kind) (V(sync_failure), V(sync_ok),
        V(keystore_error), V(new_drive), V(stop), V(served) or null), C(file), C(offset).
      type: list
      elements: dict
      sample: [{type: data_synchronization, timestamp: '2026-11-30T10:05:00Z', kind: sync_failure,
                fields: {message: Error sending data to other EKM}, file: ekm_audit.log.1764496800000, offset: 0}]
    summary:
      description: C(counts) per kind and the timestamps C(last_sync_ok), C(last_sync_failure), C(last_served), C(last_stop).
      type: dict
      sample: {counts: {served: 12, sync_failure: 1}, last_sync_ok: null, last_sync_failure: '2026-11-30T10:05:00Z',
               last_served: '2026-11-30T10:09:00Z', last_stop: null}
    position:
      description: Pass it as O(audit_position) next time.
      type: dict
      sample: {file: ekm_audit.log.1764496800000, offset: 5120}
    more:
      description: True when O(limit) stopped the read.
      type: bool
      sample: false
    unparsed_lines:
      description: Lines that belong to no record.
      type: int
      sample: 0
    error:
      description: Why the audit log could not be read (the run does not fail for it).
      type: str
      sample: null
files:
  description: One item per O(stat_paths) entry, in order; a symlink is reported as itself.
  returned: when O(stat_paths) is given
  type: list
  elements: dict
  contains:
    path:
      description: The path as given.
      type: str
      sample: /opt/ekm/run/ekm.started
    exists:
      description: Whether the path exists.
      type: bool
      sample: true
    mtime:
      description: Last modification, epoch seconds; null when it does not exist.
      type: float
      sample: 1764496800.25
    ctime:
      description: Last status change, epoch seconds; null when it does not exist.
      type: float
      sample: 1764496800.25
metadata:
  description: Key usage records since the position.
  returned: when O(metadata=true)
  type: dict
  contains:
    path:
      description: The current metadata file.
      type: str
      sample: /opt/ekm/metadata/ekm_metadata.xml
    records:
      description: >-
        Records, oldest first: C(drive_serial), C(wwn), C(created), C(key_alias_1), C(key_alias_2), C(dki), C(volser),
        and C(extra) for elements not in the table.
      type: list
      elements: dict
      sample: [{drive_serial: D1, wwn: 57574E414D453030, created: '2026-11-30T10:00:00Z', key_alias_1: dca000000000000000001,
                key_alias_2: '', dki: 1f0e3c5a7b9d2e4f, volser: VOL001, extra: {}}]
    position:
      description: Pass it as O(metadata_position) next time.
      type: dict
      sample: {inode: 131075, offset: 2048, head: 0a1b2c3d4e5f6071}
    gap:
      description: True when the metadata rotated at least twice since the position, so records may have been lost.
      type: bool
      sample: false
    more:
      description: True when O(limit) stopped the read.
      type: bool
      sample: false
    error:
      description: Why the metadata could not be read (the run does not fail for it).
      type: str
      sample: null
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ekm_records, _server_info as si


def _service(p, settings):
    port = p['port'] or si.int_or_zero((settings or {}).get('TransportListener.tcp.port'))
    pids = si.find_processes(p['process_match'] or p['config_path']) if p['check_process'] else []
    port_result = si.probe(p['probe_address'], port, p['connect_timeout'])
    state, reasons = si.service_state(pids, port_result, p['check_process'])
    return {'state': state, 'reasons': reasons, 'pids': pids, 'port': port_result}


def _audit(p, settings):
    directory = p['audit_directory'] or si.resolve(p['config_path'], (settings or {}).get('Audit.handler.file.directory'))
    name = p['audit_name'] or ((settings or {}).get('Audit.handler.file.name') or '').strip() or 'ekm_audit.log'
    if not directory:
        return {'directory': None, 'records': [], 'summary': si.audit_summary([]), 'position': p['audit_position'],
                'more': False, 'unparsed_lines': 0, 'error': 'no audit directory (Audit.handler.file.directory)'}
    try:
        result = _ekm_records.read_audit(directory, name, p['audit_position'], p['audit_since'], p['limit'])
    except _ekm_records.RecordError as exc:
        return {'directory': directory, 'records': [], 'summary': si.audit_summary([]), 'position': p['audit_position'],
                'more': False, 'unparsed_lines': 0, 'error': str(exc)}
    result.pop('files')
    result.update(directory=directory, summary=si.audit_summary(result['records']), error=None)
    return result


def _metadata(p, settings):
    path = p['metadata_path'] or si.resolve(p['config_path'], (settings or {}).get('Audit.metadata.file.name'))
    if not path:
        return {'path': None, 'records': [], 'position': p['metadata_position'], 'gap': False, 'more': False,
                'error': 'no metadata file (Audit.metadata.file.name)'}
    result = _ekm_records.read_metadata(path, p['metadata_previous_path'], p['metadata_position'], p['metadata_elements'],
                                        p['limit'])
    result.update(path=path, error=None)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_path=dict(type='path', required=True),
            expected_settings=dict(type='dict', default={}),
            ignore_settings=dict(type='list', elements='str', default=[]),
            service=dict(type='bool', default=True),
            check_process=dict(type='bool', default=True),
            process_match=dict(type='str'),
            probe_address=dict(type='str', default='127.0.0.1'),
            port=dict(type='int', default=0),
            connect_timeout=dict(type='float', default=3.0),
            audit=dict(type='bool', default=True),
            audit_position=dict(type='dict'),
            audit_since=dict(type='str'),
            audit_directory=dict(type='path'),
            audit_name=dict(type='str'),
            metadata=dict(type='bool', default=True),
            metadata_position=dict(type='dict'),
            metadata_path=dict(type='path'),
            metadata_previous_path=dict(type='path'),
            metadata_elements=dict(type='dict', default={}),
            limit=dict(type='int', default=10000),
            stat_paths=dict(type='list', elements='path', default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p['limit'] < 1:
        module.fail_json(msg=f"limit must be at least 1, not {p['limit']}")
    try:
        settings = si.read_config(p['config_path'])
        result = {'changed': False}
        if p['service']:
            result['service'] = _service(p, settings)
        drift = si.config_drift(settings, p['expected_settings'], set(p['ignore_settings']))
        result['config'] = {'path': p['config_path'], 'exists': settings is not None, 'drift': drift, 'in_sync': not drift}
        if p['audit']:
            result['audit'] = _audit(p, settings)
        if p['metadata']:
            result['metadata'] = _metadata(p, settings)
        if p['stat_paths']:
            result['files'] = si.file_times(p['stat_paths'])
    except (si.ServerInfoError, _ekm_records.RecordError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
