#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: config
short_description: Manage settings in an EKM KeyManagerConfig.properties file
version_added: 0.1.0
description:
  - Sets or removes single keys in the C(KeyManagerConfig.properties) file of an IBM/Dell Encryption Key Manager (EKM)
    server, or in any other Java properties file.
  - Only the keys named in O(settings) change. Comments, blank lines, the order of the lines, the line endings (LF or
    CRLF) and every key the task does not name stay byte for byte as they were.
  - The file is read exactly as Java's C(Properties.load) reads it (ISO-8859-1, C(=), C(:) or blanks as separators,
    backslash escapes, continuation lines). A changed key keeps its place, its spelling and its separator, and gets
    its new value on one line; a new key is added at the end of the file as C(key=value). Values are written with
    Java's own escaping, every character outside printable ASCII as C(\uXXXX), so any Java version reads them back
    unchanged.
  - Values of keys whose names contain C(pass), C(pwd), C(secret) or C(token) (in any case) are shown as C(********) in
    diffs, results and logs.
  - EKM reads this file when it starts; restart EKM (or run its C(refresh) command) for changes to take effect.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.files
  - tapecrypt.ekm.attributes
  - tapecrypt.ekm.attributes.action_group
attributes:
  diff_mode:
    details:
      - The diff shows the whole file before and after, with the values of secret-looking keys masked.
options:
  path:
    description:
      - Path of the properties file, usually C(KeyManagerConfig.properties) in the EKM home directory.
      - A symbolic link is followed; the file it points to is changed and the link stays.
    type: path
    required: true
  settings:
    description:
      - The keys to manage, as Java sees them (without escapes), with their values.
      - Strings are written as they are; booleans become V(true) or V(false) and integers are written in decimal.
        Give any other number as a quoted string, so that YAML cannot change it (V(1.10) would become V(1.1)).
      - With O(state=present) every value must be set; V(null) is refused.
      - With O(state=absent) only the names count and the values are ignored.
    type: dict
    required: true
  state:
    description:
      - V(present) gives every key of O(settings) its value, adding the keys that are missing.
      - V(absent) removes every line that defines one of the keys of O(settings).
    type: str
    choices: [present, absent]
    default: present
  create:
    description:
      - Create the file when it does not exist (with O(mode), by default V('0600')).
      - When V(false), a missing file fails the task, naming the path. With O(state=absent) a missing file is never
        created and is no change.
    type: bool
    default: true
  backup:
    description:
      - Before changing the file, keep a copy of it beside it, C(<file>.<UTC time>.bak), mode V('0600'), written
        atomically (the same copy M(tapecrypt.ekm.keystore), M(tapecrypt.ekm.sync) and M(tapecrypt.ekm.restore) make).
    type: bool
    default: false
  keep_copies:
    description:
      - With O(backup=true), keep at most this many copies of the file beside it (at least 1), newest first; older
        ones (also C(<file>.<pid>.<time>~) copies of older releases) are removed after the new copy is made. C(null)
        removes none.
    type: int
    default: 5
  mode:
    description:
      - Permissions of the file. When the module creates the file and O(mode) is not given, it is created V('0600');
        an existing file keeps its permissions unless O(mode) is given.
notes:
  - A key defined more than once in the file is what Java reads from its last line. Changing or removing such a key is
    unambiguous only once the duplicates are gone, so changing its value fails the task, naming the lines; a value
    that is already right is left alone. O(state=absent) removes every line of the key.
  - A file that Java cannot load (a malformed C(\uXXXX) escape), that is not text (NUL bytes, a UTF-8 byte order
    mark), or whose lines old and new Java versions read differently is refused without change.
  - Comments next to a removed key stay in the file.
  - The values passed in O(settings) for secret-looking keys are masked in results and logs, but the module arguments
    still pass through the controller; use C(no_log) on the task when its output may be shown elsewhere, and keep the
    values in Ansible Vault.
seealso:
  - module: ansible.builtin.lineinfile
    description: For files that are not Java properties files.
'''

EXAMPLES = r'''
- name: Configure the EKM listener ports and audit settings
  tapecrypt.ekm.config:
    path: /opt/ekm/KeyManagerConfig.properties
    settings:
      TransportListener.tcp.port: 3801
      TransportListener.ssl.port: 443
      Audit.handler.file.directory: /var/ekm/audit
      Audit.handler.file.size: 2000
      drive.acceptUnknownDrives: false
    owner: ekm
    group: ekm
    backup: true
  notify: Restart EKM

- name: Keep the keystore password in the file (masked in diffs and results)
  tapecrypt.ekm.config:
    path: /opt/ekm/KeyManagerConfig.properties
    settings:
      config.keystore.password: "{{ vault_ekm_keystore_password }}"
  no_log: true

- name: Turn off automatic synchronisation
  tapecrypt.ekm.config:
    path: /opt/ekm/KeyManagerConfig.properties
    state: absent
    settings:
      sync.ipaddress:
      sync.timeinhours:

- name: Check an existing file only, never create one
  tapecrypt.ekm.config:
    path: /opt/ekm/KeyManagerConfig.properties
    create: false
    settings:
      symmetricKeySet: DCA001-1FF
  check_mode: true
  register: ekm_config_check
'''

RETURN = r'''
changed_keys:
  description:
    - The keys whose value changed or that were added (O(state=present)), or that were removed (O(state=absent)), in the
      order of O(settings). In check mode, the keys that would change.
  returned: always
  type: list
  elements: str
  sample: [TransportListener.tcp.port, drive.acceptUnknownDrives]
backup_file:
  description: The copy of the previous file made because of O(backup=true).
  returned: changed and O(backup=true) and the file existed
  type: str
  sample: /opt/ekm/KeyManagerConfig.properties.20260302T101507123456Z.bak
removed_copies:
  description: Older copies of the file that O(keep_copies) removed.
  returned: when RV(backup_file) is returned
  type: list
  elements: str
  sample: [/opt/ekm/KeyManagerConfig.properties.20260102T030405123456Z.bak]
'''

import contextlib
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.tapecrypt.ekm.plugins.module_utils._files import (
    DirLock, FileAttributes, FileError, atomic_write, backup_copy, read_bytes)
from ansible_collections.tapecrypt.ekm.plugins.module_utils import _copies
from ansible_collections.tapecrypt.ekm.plugins.module_utils._properties import PropertiesError, PropertiesFile, is_secret_key


class _Failure(Exception):
    """A domain error for fail_json; the message names the path or key, never a value."""


class _ConfigModule(AnsibleModule):
    def _log_invocation(self):
        # AnsibleModule writes its arguments to syslog/journald from __init__, before main() runs: register the
        # secret values first, so that the log shows ******** for them too.
        self.no_log_values.update(secret_values(self.params.get('settings')))
        super()._log_invocation()


def property_text(key, value):
    """A settings value as the text Java should read; raise _Failure for values YAML could have changed."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if value is None:
        raise _Failure('settings: %r has no value; give one, or use state=absent to remove the key.' % key)
    if isinstance(value, float):
        raise _Failure('settings: give the value of %r as a quoted string; YAML turns numbers such as 1.10 into 1.1.' % key)
    raise _Failure('settings: the value of %r must be a string, a number or a boolean, not a %s.' % (key, type(value).__name__))


def secret_values(settings):
    """The texts that must never show in output: the values given for secret-looking keys."""
    values = set()
    for key, value in (settings or {}).items():
        if not (isinstance(key, str) and is_secret_key(key)):
            continue
        if isinstance(value, bool):
            continue  # 'true' and 'false' are no secret, and masking them would garble every other output
        if isinstance(value, (str, int, float)) and str(value):
            values.add(str(value))
    return values


def read_file(path):
    """The file's bytes, or None when it does not exist."""
    if os.path.isdir(path):
        raise _Failure('%s is a directory, not a properties file.' % path)
    try:
        return read_bytes(path)
    except FileError as exc:
        raise _Failure(str(exc)) from exc


def plan(module, params):
    """Work out the new content: (old bytes or None, new PropertiesFile, changed keys, before text)."""
    path = params['path']
    present = params['state'] == 'present'
    settings = params['settings']
    for key in settings:
        if not key:
            raise _Failure('settings: an empty key name is not a property EKM reads.')
    wanted = {key: property_text(key, value) for key, value in settings.items()} if present else {}

    data = read_file(path)
    if data is None and present and not params['create']:
        raise _Failure('%s does not exist, and create=false.' % path)
    try:
        properties = PropertiesFile.parse(data or b'')
    except PropertiesError as exc:
        raise _Failure('%s: %s' % (path, exc)) from exc
    before = properties.masked_text()
    for key in settings:
        if is_secret_key(key) and properties.get(key):
            module.no_log_values.add(properties.get(key))

    changed_keys = []
    for key in settings:
        try:
            changed = properties.set(key, wanted[key]) if present else properties.remove(key)
        except PropertiesError as exc:
            raise _Failure('%s: %s' % (path, exc)) from exc
        if changed:
            changed_keys.append(key)
    return data, properties, changed_keys, before


def main():
    module = _ConfigModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            settings=dict(type='dict', required=True),
            state=dict(type='str', default='present', choices=['present', 'absent']),
            create=dict(type='bool', default=True),
            backup=dict(type='bool', default=False),
            keep_copies=dict(type='int', default=_copies.DEFAULT_KEEP),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    params = module.params
    path = params['path']
    if params['keep_copies'] is not None and params['keep_copies'] < 1:
        module.fail_json(msg='keep_copies must be at least 1 (the copy this run makes); got %d.' % params['keep_copies'])
    directory = os.path.dirname(os.path.realpath(path))
    try:
        # Read, change and write under the directory's lock, like every tapecrypt.ekm writer of EKM's files.
        with DirLock(path) if os.path.isdir(directory) else contextlib.nullcontext():
            result = run(module, params)
    except FileError as exc:
        module.fail_json(msg=to_text(exc))
    module.exit_json(**result)


def run(module, params):
    """Plan, and outside check mode write; the module result."""
    path = params['path']
    try:
        module.no_log_values.update(secret_values(params['settings']))
        data, properties, changed_keys, before = plan(module, params)
    except _Failure as exc:
        module.fail_json(msg=to_text(exc))

    new_data = properties.dump()
    exists = data is not None
    if not exists and params['state'] == 'absent':
        return dict(changed=False, changed_keys=[])
    changed = not exists or new_data != data
    result = dict(changed=changed, changed_keys=changed_keys)
    if module._diff:
        result['diff'] = dict(before=before if exists else '', after=properties.masked_text(),
                              before_header=path, after_header=path)

    target = os.path.realpath(path)
    file_args = module.load_file_common_arguments(params, path=target)
    if module.check_mode:
        if exists:
            result['changed'] = module.set_fs_attributes_if_different(file_args, changed)
        return result

    if changed:
        try:
            if exists and params['backup']:
                result['backup_file'] = backup_copy(target)
                # The copies of a configuration go by age (a keystore's are pruned by tapecrypt.ekm.backup).
                result['removed_copies'] = _copies.prune(target, params['keep_copies'])[0]
            # Owner, group and mode go on before the rename; a new file starts private (it may hold the keystore
            # password), an existing one keeps its owner and permissions unless they are given.
            atomic_write(path, new_data, attributes=FileAttributes.from_params(params),
                         prepare=lambda temp: module.set_fs_attributes_if_different(
                             module.load_file_common_arguments(params, path=temp), False))
        except (FileError, OSError) as exc:
            result.update(changed=False, msg=to_text(exc))
            result.pop('diff', None)
            module.fail_json(**result)
    result['changed'] = module.set_fs_attributes_if_different(file_args, changed)
    return result


if __name__ == '__main__':
    main()
