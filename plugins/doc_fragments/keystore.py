# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations


class ModuleDocFragment:
    """Options every module that opens an EKM keystore shares."""

    DOCUMENTATION = r'''
options:
  path:
    description:
      - Path of the JCEKS keystore that EKM reads (V(config.keystore.file) in C(KeyManagerConfig.properties)).
    type: path
    required: true
  password:
    description:
      - The keystore (store) password. It is checked against the keystore's integrity hash before anything is read
        or written; a wrong password fails the task and changes nothing.
      - Never logged, never passed on a command line.
    type: str
  key_password:
    description:
      - The password that protects each key entry. When not set, the value of O(password) is used.
      - EKM opens keys with the keystore password, so leave it unset unless the keystore was made otherwise.
    type: str
notes:
  - Aliases are stored lower-case, as Java's JCEKS provider looks them up lower-cased.
  - Key material never appears in results, diffs or logs; only aliases, counts, hashes and fingerprints do.
'''
