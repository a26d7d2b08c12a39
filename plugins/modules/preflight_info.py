#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: preflight_info
short_description: Read what the preflight of the EKM playbooks checks on a host
version_added: 0.1.0
description:
  - Returns, for one host, what the C(preflight) entry point of P(tapecrypt.ekm.common#role) needs before a playbook
    changes anything, changing nothing itself
    - which machine the host is, and the identity of each named file, so that two inventory hosts whose EKM files are
      the very same files (the same directory on one machine, also through symbolic links, bind mounts or a
      different spelling of the path) can be told apart from two hosts that merely use the same path;
    - whether each named directory exists and can be written to;
    - whether each named account and group exists.
  - A file that does not exist yet is identified by its nearest existing parent directory and the rest of its path,
    so that two servers that would create the same files are found before either exists.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
extends_documentation_fragment:
  - tapecrypt.ekm.attributes.info_module
options:
  paths:
    description:
      - "Files to identify, by a name of your choice, for example C({keystore: /opt/ekm/keystore/EKMKeys.jck})."
      - Each path must be absolute; a relative one is taken relative to the module's working directory.
    type: dict
    default: {}
  writable_dirs:
    description:
      - Directories that must exist and be writable, for example a backup destination.
      - Writing is tried for real, since permissions do not tell whether root can write (a read-only mount, a full
        or a root-squashed network file system), by creating an empty file named C(.tapecrypt-preflight-*) in the
        directory and removing it at once, also in check mode. Nothing remains.
    type: list
    elements: path
    default: []
  users:
    description: Accounts that must exist on the host.
    type: list
    elements: str
    default: []
  groups:
    description: Groups that must exist on the host.
    type: list
    elements: str
    default: []
notes:
  - The machine is identified by the running kernel's boot ID (C(/proc/sys/kernel/random/boot_id)), which every
    container or namespace sharing that kernel sees, and which differs between machines, also between cloned virtual
    machines; where there is none, by C(/etc/machine-id) and the host name.
seealso:
  - module: tapecrypt.ekm.keystore_info
'''

EXAMPLES = r'''
- name: Read what the preflight checks
  tapecrypt.ekm.preflight_info:
    paths:
      home: /opt/ekm
      keystore: /opt/ekm/keystore/EKMKeys.jck
    writable_dirs:
      - /srv/ekm-backup
    users: [ekm]
    groups: [ekm]
  register: preflight

- name: Fail when the backup destination cannot be written
  ansible.builtin.assert:
    that: preflight.directories | rejectattr('writable') | list | length == 0
    fail_msg: "{{ preflight.directories | rejectattr('writable') | map(attribute='problem') | list }}"
'''

RETURN = r'''
machine:
  description: Identifies the machine (the running kernel); equal for two inventory hosts that are one machine.
  returned: always
  type: str
  sample: boot:0f5c2a4e-9d1b-4c8e-8f1a-2b3c4d5e6f70
paths:
  description: One item per name of O(paths).
  returned: always
  type: dict
  contains:
    path:
      description: The path as given.
      type: str
      sample: /opt/ekm/keystore/EKMKeys.jck
    exists:
      description: Whether the file or directory exists.
      type: bool
      sample: true
    real_path:
      description: The path with every symbolic link of its existing part resolved.
      type: str
      sample: /srv/ekm/keystore/EKMKeys.jck
    identity:
      description:
        - Device and inode of the nearest existing part of the path, then the rest of the path. Equal on one
          RV(machine) exactly when the two paths name the same file, existing or to be created.
      type: str
      sample: 2049:131074/keystore/EKMKeys.jck
  sample: {keystore: {path: /opt/ekm/keystore/EKMKeys.jck, exists: true, real_path: /opt/ekm/keystore/EKMKeys.jck,
                      identity: "2049:131074"}}
directories:
  description: One item per directory of O(writable_dirs), in their order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The directory as given.
      type: str
      sample: /srv/ekm-backup
    writable:
      description: Whether it is an existing directory that a file could be created in.
      type: bool
      sample: false
    problem:
      description: What is wrong, or V(null).
      type: str
      sample: /srv/ekm-backup does not exist
  sample: [{path: /srv/ekm-backup, writable: true, problem: null}]
users:
  description: Each account of O(users) and whether it exists.
  returned: always
  type: dict
  sample: {ekm: true}
groups:
  description: Each group of O(groups) and whether it exists.
  returned: always
  type: dict
  sample: {ekm: false}
'''

import grp
import os
import pwd
import socket
import tempfile

from ansible.module_utils.basic import AnsibleModule

_MACHINE_SOURCES = (('boot', '/proc/sys/kernel/random/boot_id'), ('machine', '/etc/machine-id'))


def machine_identity():
    """The running kernel's boot ID, else the machine ID and the host name."""
    for kind, source in _MACHINE_SOURCES:
        try:
            with open(source, encoding='ascii') as f:
                value = f.read().strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value:
            return '%s:%s' % (kind, value) if kind == 'boot' else '%s:%s@%s' % (kind, value, socket.gethostname())
    return 'host:' + socket.gethostname()


def path_identity(path):
    """exists, real path and identity (device:inode of the nearest existing part, then the rest) of ``path``."""
    # realpath also follows a symbolic link whose target does not exist yet (a directory about to be made).
    current = os.path.realpath(path)
    rest = []
    while not os.path.exists(current) and os.path.dirname(current) != current:
        rest.insert(0, os.path.basename(current))
        current = os.path.dirname(current)
    st = os.stat(current)
    tail = '/'.join(rest)
    identity = '%d:%d' % (st.st_dev, st.st_ino) + ('/' + tail if tail else '')
    return dict(path=path, exists=not rest, real_path=os.path.join(current, tail) if tail else current,
                identity=identity)


def directory_state(path):
    """Whether ``path`` is a directory that a file can be created in, by creating one and removing it."""
    if not os.path.exists(path):
        return dict(path=path, writable=False, problem='%s does not exist' % path)
    if not os.path.isdir(path):
        return dict(path=path, writable=False, problem='%s is not a directory' % path)
    try:
        fd, probe = tempfile.mkstemp(prefix='.tapecrypt-preflight-', dir=path)
    except OSError as exc:
        return dict(path=path, writable=False, problem='%s cannot be written to (%s)' % (path, exc.strerror or exc))
    os.close(fd)
    os.unlink(probe)
    return dict(path=path, writable=True, problem=None)


def _exists(lookup, name):
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='dict', default={}),
            writable_dirs=dict(type='list', elements='path', default=[]),
            users=dict(type='list', elements='str', default=[]),
            groups=dict(type='list', elements='str', default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    paths = {}
    for name, path in p['paths'].items():
        if not isinstance(path, str) or not path:
            module.fail_json(msg='paths.%s must be a path, not %r' % (name, path))
        paths[name] = path_identity(path)
    module.exit_json(
        changed=False,
        machine=machine_identity(),
        paths=paths,
        directories=[directory_state(d) for d in p['writable_dirs']],
        users=dict((u, _exists(pwd.getpwnam, u)) for u in p['users']),
        groups=dict((g, _exists(grp.getgrnam, g)) for g in p['groups']),
    )


if __name__ == '__main__':
    main()
