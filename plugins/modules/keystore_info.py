#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: keystore_info
short_description: Inventory an EKM JCEKS keystore without revealing keys
version_added: 0.1.0
description:
  - Lists the entries of a JCEKS (or JKS) keystore, that is aliases, entry kinds, creation times, a hash of every
    stored entry, the aliases compressed into EKM range syntax, and a digest of the whole keystore that two servers
    can compare.
  - Listing and the integrity check decrypt nothing and take about 60 ms per 1000 entries. Fingerprints of the key
    values (O(fingerprints=true)) need every key decrypted, about 50 to 100 ms per key at OpenJDK's 200000 PBE
    iterations (well under a millisecond at the 20 of IBM's keytool), and are opt-in.
  - Keys of both dialects are read, V(sunjce) (written by OpenJDK) and V(ibm) (written by IBM's JRE, which EKM ships
    with); RV(keystore.dialect) says which one the keystore holds.
  - Key material is never returned.
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
requirements:
  - The Python library C(cryptography) on the managed host, only with O(fingerprints=true) (listing and the integrity
    check need none). The task fails with a message saying so when it is missing.
extends_documentation_fragment:
  - tapecrypt.ekm.keystore
  - tapecrypt.ekm.attributes.info_module
  - tapecrypt.ekm.attributes.action_group
options:
  password:
    description:
      - The keystore password. When given, the keystore's integrity hash is verified and a mismatch fails the task
        (wrong password, or an altered or damaged file). Without it, only the structure is read.
      - Required when O(fingerprints=true).
  key_password:
    description:
      - The password that protects each key entry, needed for O(fingerprints=true) when the keys were sealed with
        another password than the store's (keytool's C(-keypass)). When not set, the value of O(password) is used.
    type: str
  fingerprints:
    description:
      - Decrypt every secret key and return its fingerprint, C(HMAC-SHA256(key, "tapecrypt.ekm key fingerprint v1"))
        cut to 8 bytes in hexadecimal. Equal fingerprints mean equal keys; the fingerprint reveals nothing usable
        about the key.
      - Entries that are byte-identical always hold equal keys; compare RV(keystore.entries[].entry_sha256) first,
        it costs nothing.
    type: bool
    default: false
  entries:
    description:
      - Return one item per entry in RV(keystore.entries). With V(false) the result holds only the summary (count,
        ranges, digest, hashes), which keeps a check of a keystore of many thousands of keys quick; Ansible itself
        spends about a second on a result of 10000 entries.
    type: bool
    default: true
seealso:
  - module: tapecrypt.ekm.keystore
'''

EXAMPLES = r'''
- name: Inventory the primary's keystore
  tapecrypt.ekm.keystore_info:
    path: /opt/ekm/keystore/EKMKeys.jck
    password: "{{ vault_ekm_keystore_password }}"
  register: ks

- name: Show how many keys there are and which ranges they cover
  ansible.builtin.debug:
    msg: "{{ ks.keystore.count }} entries: {{ ks.keystore.ranges | join(', ') }}"

- name: Aliases created after a date, with json_query
  ansible.builtin.debug:
    msg: "{{ ks.keystore.entries | community.general.json_query(\"[?created > '2026-11-01'].alias\") }}"

- name: Compare key values with the redundant server by fingerprint
  tapecrypt.ekm.keystore_info:
    path: /opt/ekm/keystore/EKMKeys.jck
    password: "{{ vault_ekm_keystore_password }}"
    fingerprints: true
  register: ks_fp
'''

RETURN = r'''
keystore:
  description: The inventory.
  returned: always
  type: dict
  contains:
    path:
      description: The keystore path.
      type: str
      sample: /opt/ekm/keystore/EKMKeys.jck
    exists:
      description: Whether the file exists. When V(false), the other keys are empty.
      type: bool
      sample: true
    sha256:
      description: SHA-256 of the whole file.
      type: str
      sample: 8c6f7f6d0c5e2d1c4b3a29180716f5e4d3c2b1a09f8e7d6c5b4a392817161514
    type:
      description: V(JCEKS) or V(JKS).
      type: str
      sample: JCEKS
    dialect:
      description:
        - Dialect of the secret keys. V(sunjce) (OpenJDK's JCEKS provider wrote them), V(ibm) (IBM's JRE wrote them),
          V(mixed) when the keystore holds both (no Java runtime reads all of it), V(null) when it holds no key of
          either.
      type: str
      sample: ibm
    count:
      description: Number of entries of every kind.
      type: int
      sample: 512
    ranges:
      description: Secret-key aliases compressed into EKM C(symmetricKeySet) range syntax.
      type: list
      elements: str
      sample: [DCA001-200]
    digest:
      description: SHA-256 over the sorted C(alias:entry_sha256) lines; equal on two servers when every entry is
        byte-identical.
      type: str
      sample: 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
    newest_created:
      description: Creation time of the newest entry, ISO 8601 UTC; V(null) for an empty keystore.
      type: str
      sample: '2026-11-26T10:00:00.00Z'
    entries:
      description: One item per entry, in file order; empty when O(entries=false).
      type: list
      elements: dict
      contains:
        alias:
          description: The alias as stored (lower-case for keys this collection wrote).
          type: str
          sample: dca000000000000000001
        kind:
          description: V(secret), V(private) (key pair) or V(trusted) (certificate).
          type: str
          sample: secret
        dialect:
          description: V(sunjce) or V(ibm) for a secret key sealed the way OpenJDK's or IBM's keytool seals it;
            V(null) for key pairs, certificates and secret keys of any other layout.
          type: str
          sample: sunjce
        algorithm:
          description: Key algorithm. Without fingerprints it is inferred from the sealed entry's length, which
            identifies an AES-256 key in either dialect; V(null) when it cannot be inferred.
          type: str
          sample: AES
        size:
          description: Key size in bits, inferred like RV(keystore.entries[].algorithm).
          type: int
          sample: 256
        created:
          description: Creation time recorded in the entry, ISO 8601 UTC.
          type: str
          sample: '2026-11-26T10:00:00.00Z'
        entry_sha256:
          description: SHA-256 of the entry's stored bytes; equal bytes mean equal keys.
          type: str
          sample: 1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a
        fingerprint:
          description: Key fingerprint (16 hexadecimal digits).
          returned: when O(fingerprints=true), for secret keys
          type: str
          sample: 3f9a0c1d2e4b5a69
'''

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks, _keystore
from ansible_collections.tapecrypt.ekm.plugins.module_utils._requirements import require_cryptography


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', required=True),
            password=dict(type='str', no_log=True),
            key_password=dict(type='str', no_log=True),
            fingerprints=dict(type='bool', default=False),
            entries=dict(type='bool', default=True),
        ),
        required_if=[('fingerprints', True, ('password',))],
        supports_check_mode=True,
    )
    p = module.params
    if p['fingerprints']:
        require_cryptography(module, 'to decrypt keys for fingerprints=true')
    key_password = p['key_password'] if p['key_password'] is not None else p['password']
    try:
        keystore, data = _keystore.read(p['path'], p['password'])
        if keystore is None:
            module.exit_json(changed=False, keystore=dict(path=p['path'], exists=False, sha256=None, type=None, count=0,
                                                          ranges=[], digest=None, newest_created=None,
                                                          entries=[]))
        info = _keystore.inventory(keystore, p['path'], data, p['fingerprints'], key_password, p['entries'])
    except (_keystore.KeystoreError, _jceks.JceksError) as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, keystore=info)


if __name__ == '__main__':
    main()
