#!/usr/bin/python
# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r'''
---
module: keystore
short_description: Ensure AES-256 tape data keys exist in an EKM JCEKS keystore
version_added: 0.1.0
description:
  - Ensures that every alias of O(ranges) and O(aliases) holds a 256-bit AES secret key in the JCEKS keystore that
    the IBM/Dell Encryption Key Manager (EKM) hands to tape drives, creating the keystore when it does not exist.
  - New keys are appended. Existing entries, of any kind, are kept byte for byte. There is no way to delete,
    replace or regenerate a key with this module; keys must live as long as the tapes written with them.
  - Idempotence is judged by alias presence, which needs no decryption, so a run that changes nothing stays fast
    for keystores of many thousands of keys.
  - After keys are added, back the keystore up to media that is not encrypted with these keys (see
    M(tapecrypt.ekm.backup)) and copy it to the redundant EKM (see M(tapecrypt.ekm.sync)).
author:
  - tapecrypt.ekm contributors (!UNKNOWN)
requirements:
  - The Python library C(cryptography) on the managed host, to create keys - O(backend=python) seals them with it,
    O(backend=keytool) carries them to keytool in a PKCS#12 file it encrypts with it. The task fails with a message
    saying so when it is missing and O(generate=true); O(generate=false) needs no cryptography.
extends_documentation_fragment:
  - ansible.builtin.files
  - tapecrypt.ekm.keystore
  - tapecrypt.ekm.attributes
  - tapecrypt.ekm.attributes.action_group
options:
  password:
    required: true
  ranges:
    description:
      - Sequential alias ranges in IBM's form, a 3-letter prefix followed by an 18-digit hexadecimal counter
        (C(prefix + '%018x' % n)), for example C(dca000000000000000001).
      - Each item is either a dictionary with C(prefix), C(first) and one of C(last) or C(count), or a string in
        EKM's C(symmetricKeySet) range syntax such as V(DCA001-1FF).
      - Ranges must not overlap each other; equal ranges (the same aliases, however written) count once.
      - One run creates at most 100000 new keys (sealing them holds the keystore's lock), and O(ranges) and
        O(aliases) together name at most 1000000 aliases; add more keys in chunks, one run per chunk.
    type: list
    elements: raw
    default: []
  aliases:
    description:
      - Explicit aliases of at most 12 printable characters (or complete 21-character sequential aliases).
    type: list
    elements: str
    default: []
  generate:
    description:
      - When V(false), the module never creates a key. It only checks that every requested alias exists and fails,
        naming the missing aliases, when some do not. Redundant servers use this as a guard, since their keys must
        be byte copies of the primary's.
    type: bool
    default: true
  backend:
    description:
      - V(python) seals new keys natively in the keystore's dialect (see O(dialect)), using every CPU core.
      - V(keytool) has the host's own keytool seal the new keys, the fallback for a JRE that reads neither dialect as
        this module writes it; O(verify_with_keytool) tells you whether that is the case.
      - With V(keytool), the module writes the new random keys into PKCS#12 files in a private temporary directory,
        protected by a one-time password, and C(keytool -importkeystore) seals each file into JCEKS in one JVM run,
        one JVM per CPU core (see O(processes)) on its share of the keys. The sealed entries are then added byte for
        byte to the keystore. The temporary directory is removed whatever happens.
      - When that fails and a one-key probe shows that this keytool cannot import PKCS#12 secret keys at all, the
        module falls back to one C(keytool -genseckey) run per key (about half a second each); RV(keytool) says which
        way was used.
    type: str
    choices: [python, keytool]
    default: python
  dialect:
    description:
      - How new keys are sealed. Java runtimes write JCEKS secret keys in one of two dialects and read only their own;
        one keystore never holds both.
      - V(sunjce) is what OpenJDK (and Temurin, Semeru) writes and reads, byte-identical to OpenJDK's keytool.
      - V(ibm) is what IBM's JRE, the one EKM ships with, writes and reads; entries are laid out exactly like those
        of IBM's keytool.
      - V(auto) takes the dialect of the secret keys already in the keystore; a keystore that does not exist yet (or
        holds no secret key) gets V(sunjce).
      - Naming a dialect other than the one of the keys already in the keystore fails and changes nothing, and so
        does a keystore that already holds both.
      - With O(backend=keytool) the host's keytool decides; the module only refuses a result that mixes dialects.
    type: str
    choices: [auto, sunjce, ibm]
    default: auto
  keytool_path:
    description:
      - Path of the keytool to run for O(backend=keytool) and O(verify_with_keytool). Default is
        C(<java_home>/bin/keytool), or keytool from E(PATH).
    type: path
  java_home:
    description:
      - Home of the Java runtime that EKM runs on; its C(bin/keytool) is used when O(keytool_path) is not set.
    type: path
  iteration_count:
    description:
      - PBE iteration count for new entries (what protects each key with O(key_password)). Java refuses to read
        counts above 5000000.
      - Default is the count most of the keystore's keys of the same dialect already use; for the first key of a
        dialect it is what that dialect's keytool writes, 200000 (OpenJDK) or 20 (IBM).
      - The keystore's integrity hash is keyed with the bare store password, so more iterations do not protect that
        password; an IBM JRE release that cannot read an unusual count would lose the key. Keep the default for
        V(ibm).
    type: int
  processes:
    description:
      - Worker processes that seal new keys in parallel. Default is the number of CPUs.
      - With O(backend=keytool), the number of keytool JVMs run at once (at most 8, and one per 16 new keys).
    type: int
  verify_with_keytool:
    description:
      - After adding keys, make the host's keytool (the JRE named by O(java_home) or O(keytool_path)) copy every
        entry of the new keystore into a throw-away keystore in a private temporary directory, which it can only do
        by decrypting each key. That directory (C(.tapecrypt-verify-*.tmpdir), mode 0700, its files 0600) lies beside
        the keystore and is removed afterwards; if the run is killed there, the next run removes it under the
        keystore's lock.
      - The new file replaces the old one only when that succeeds. Otherwise the old file stays in place and the task
        fails, saying that this JRE cannot read the written entries and that O(backend=keytool) is the way for it.
      - This turns the risk that the EKM's own JRE cannot read the keys into an error at provisioning time instead of
        an unreadable tape later.
    type: bool
    default: false
  backup:
    description:
      - Keep a copy of the previous keystore before replacing it, C(<file>.<UTC time>.bak) beside it, mode V('0600'),
        written atomically.
      - This module never removes such copies; only M(tapecrypt.ekm.backup) does (its O(tapecrypt.ekm.backup#module:keep_copies)),
        once the keystore and a verified backup set both hold every entry of a copy.
    type: bool
    default: false
seealso:
  - module: tapecrypt.ekm.keystore_info
  - module: tapecrypt.ekm.sync
  - module: tapecrypt.ekm.backup
'''

EXAMPLES = r'''
- name: Ensure 512 data keys for site DC1 exist on the primary EKM
  tapecrypt.ekm.keystore:
    path: /opt/ekm/keystore/EKMKeys.jck
    password: "{{ vault_ekm_keystore_password }}"
    ranges:
      - prefix: DCA
        first: 1
        count: 512
    owner: ekm
    group: ekm
    mode: "0600"
    backup: true

- name: Add a range in EKM's own syntax and prove that the EKM host's JRE reads the new keys
  tapecrypt.ekm.keystore:
    path: /opt/ekm/keystore/EKMKeys.jck
    password: "{{ vault_ekm_keystore_password }}"
    ranges:
      - DCA201-2FF
    java_home: /opt/ekm/jre
    verify_with_keytool: true

- name: Create the keystore of an EKM that runs on IBM's JRE, in that JRE's dialect, and prove that it reads the keys
  tapecrypt.ekm.keystore:
    path: /opt/ekm/keystore/EKMKeys.jck
    password: "{{ vault_ekm_keystore_password }}"
    ranges:
      - DCA001-200
    dialect: ibm
    java_home: /opt/ekm/jre
    verify_with_keytool: true

- name: On a redundant server, only check that the primary's keys arrived
  tapecrypt.ekm.keystore:
    path: /opt/ekm/keystore/EKMKeys.jck
    password: "{{ vault_ekm_keystore_password }}"
    ranges:
      - {prefix: DCA, first: 1, count: 512}
    generate: false
'''

RETURN = r'''
created:
  description: Aliases created by this run, compressed into EKM range syntax (single aliases as they are).
  returned: always
  type: list
  elements: str
  sample: [DCA001-200]
created_count:
  description: Number of keys created by this run (in check mode, the number that would be created).
  returned: always
  type: int
  sample: 512
total:
  description: Number of entries in the keystore after the run.
  returned: always
  type: int
  sample: 512
digest:
  description: SHA-256 over the sorted C(alias:entry_sha256) lines; equal digests mean byte-identical entries.
  returned: always
  type: str
  sample: 0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0
backup_file:
  description: Path of the copy of the previous keystore.
  returned: when O(backup=true) and the keystore was replaced
  type: str
  sample: /opt/ekm/keystore/EKMKeys.jck.20261126T100000123456Z.bak
keytool:
  description: How the host's keytool made the keys.
  returned: when O(backend=keytool) and keys were created
  type: dict
  contains:
    method:
      description: V(importkeystore) (PKCS#12 batches, one JVM per part) or V(genseckey) (one JVM per key).
      type: str
      sample: importkeystore
    runs:
      description: Number of keytool JVMs started.
      type: int
      sample: 2
    reason:
      description: Why the module fell back to one JVM per key.
      type: str
      returned: when RV(keytool.method=genseckey)
  sample: {method: importkeystore, runs: 2}
dialect:
  description: Dialect of the keystore's secret keys after the run (V(sunjce) or V(ibm)), as O(dialect) resolved it.
  returned: always
  type: str
  sample: ibm
iteration_count:
  description: PBE iteration count of the keys this run sealed (or would seal); V(null) with O(backend=keytool).
  returned: always
  type: int
  sample: 20
verified_with_keytool:
  description: Whether the host's keytool decrypted every entry of the written keystore.
  returned: always
  type: bool
  sample: false
'''

import contextlib
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _aliases, _files, _jceks, _keystore, _keytool
from ansible_collections.tapecrypt.ekm.plugins.module_utils._requirements import require_cryptography


def requested_aliases(module):
    """The ordered, de-duplicated aliases the task asks for; overlaps are errors."""
    try:
        ranges = _aliases.parse_ranges(module.params['ranges'])
        explicit = [_aliases.normalize_alias(a) for a in module.params['aliases']]
        wanted = _aliases.expand(ranges)
    except _aliases.AliasError as exc:
        module.fail_json(msg=str(exc))
    seen = set(wanted)
    dup = [a for a in explicit if a in seen]
    if dup:
        module.fail_json(msg='These aliases are listed in aliases and also fall inside ranges: %s.' % _keystore.name_aliases(dup))
    for alias in explicit:
        if alias not in seen:
            seen.add(alias)
            wanted.append(alias)
    return wanted


def diff_text(secret):
    lines = ['keys: %d' % len(secret)] + ['  %s' % item for item in _aliases.compress(secret)]
    return '\n'.join(lines) + '\n'


def argument_spec():
    return dict(
        path=dict(type='path', required=True),
        password=dict(type='str', required=True, no_log=True),
        key_password=dict(type='str', no_log=True),
        ranges=dict(type='list', elements='raw', default=[]),
        aliases=dict(type='list', elements='str', default=[]),
        generate=dict(type='bool', default=True),
        backend=dict(type='str', choices=['python', 'keytool'], default='python'),
        dialect=dict(type='str', choices=['auto'] + list(_jceks.DIALECTS), default='auto'),
        keytool_path=dict(type='path'),
        java_home=dict(type='path'),
        iteration_count=dict(type='int'),
        processes=dict(type='int'),
        verify_with_keytool=dict(type='bool', default=False),
        backup=dict(type='bool', default=False),
    )


def check_params(module):
    """Fail early on arguments no keystore could satisfy; returns the key password to use."""
    p = module.params
    count = p['iteration_count']
    if count is not None and not _jceks.MIN_ITERATION_COUNT <= count <= _jceks.MAX_ITERATION_COUNT:
        module.fail_json(msg='iteration_count must be between %d and %d (Java refuses to read more); got %d.'
                         % (_jceks.MIN_ITERATION_COUNT, _jceks.MAX_ITERATION_COUNT, count))
    path = p['path']
    if os.path.isdir(path):
        module.fail_json(msg='path %s is a directory; give the keystore file, for example %s/EKMKeys.jck.' % (path, path))
    if p['generate']:
        require_cryptography(module, 'to create keys (sealed by backend=python, or carried to keytool in a PKCS#12 file)')
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        module.fail_json(msg='The directory of %s does not exist; create it first (mode 0700, owned by the EKM user).' % path)
    return p['key_password'] if p['key_password'] is not None else p['password']


def main():
    module = AnsibleModule(argument_spec=argument_spec(), add_file_common_args=True, supports_check_mode=True)
    p = module.params
    path = p['path']
    key_password = check_params(module)
    wanted = requested_aliases(module)
    if not wanted:
        module.fail_json(msg='Nothing to ensure: give at least one range or alias.')
    result = dict(changed=False, created=[], created_count=0, total=0, digest=None, dialect=None, iteration_count=None,
                  verified_with_keytool=False)
    try:
        # An owner or group that does not exist is refused before any key is made.
        _files.FileAttributes.from_params(p).check()
        with _files.DirLock(path):
            if not module.check_mode:
                # Under the lock, every marked temporary file in the directory is a leftover of a killed run.
                _files.remove_temporaries(os.path.dirname(os.path.realpath(path)))
            existed, before_text, after_text = ensure_keys(module, result, wanted, key_password)
    except (_keystore.KeystoreError, _jceks.JceksError, _files.FileError) as exc:
        fail_after_write(module, result, exc)
    if module._diff and result['changed']:
        result['diff'] = dict(before_header=path if existed else '/dev/null', after_header=path,
                              before=before_text, after=after_text)
    if os.path.exists(path):
        file_args = module.load_file_common_arguments(p)
        with reporting_changes(module, result):
            result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
    module.exit_json(**result)


def fail_after_write(module, result, exc):
    """Fail with ``exc``; once the keystore was replaced, the result still says changed and what was created."""
    if not getattr(exc, 'replaced', False):
        # Nothing was written: every write in ensure_keys() is the last step and atomic.
        module.fail_json(msg=str(exc))
    result['changed'] = True
    module.fail_json(msg='%s The keystore was replaced and holds the %d new key(s) listed in created.'
                     % (exc, result['created_count']), **result)


@contextlib.contextmanager
def reporting_changes(module, result):
    """A fail_json inside (Ansible's own, after the keystore was replaced) still reports changed and created."""
    original = module.fail_json

    def fail_json(msg, **kwargs):
        merged = dict(result)
        merged.update(kwargs)
        original(msg=msg, **merged)

    module.fail_json = fail_json
    try:
        yield
    finally:
        module.fail_json = original


def ensure_keys(module, result, wanted, key_password):
    """Read, decide and (unless in check mode) write; fills ``result``. Returns (existed, diff before, diff after)."""
    p = module.params
    path = p['path']
    keystore, data = _keystore.read(path, p['password'])
    existed = keystore is not None
    if keystore is None:
        keystore = _jceks.new_keystore()
    _keystore.check_existing(keystore, wanted, p['backend'])
    dialect = _keystore.resolve_dialect(keystore, p['dialect'])
    missing = [a for a in wanted if keystore.get(a) is None]
    secret = [e.alias for e in keystore.entries if e.kind == 'secret']
    if len(missing) > _keystore.MAX_NEW_KEYS:
        module.fail_json(msg='This run would create %d keys in %s, more than the %d one run may create; add them in '
                         'chunks of at most %d (one run per chunk), or check the ranges for a typo. Nothing was changed.'
                         % (len(missing), path, _keystore.MAX_NEW_KEYS, _keystore.MAX_NEW_KEYS))
    if missing and not p['generate']:
        module.fail_json(msg='%s lacks %d requested key(s) and generate is false, so none were created: %s. '
                         'On a redundant server, copy the keystore from the primary (tapecrypt.ekm.sync).'
                         % (path if existed else 'The keystore %s does not exist and' % path, len(missing),
                            _keystore.name_aliases(missing)))
    result.update(created=_aliases.compress(missing), created_count=len(missing), dialect=dialect)
    if p['backend'] == 'python':
        result['iteration_count'] = p['iteration_count'] or _keystore.default_iteration_count(keystore, dialect)
    if missing:
        refuse_unknown_entries(module, keystore)
        result['changed'] = True
        if not module.check_mode:
            keystore = write_keys(module, result, keystore, data, missing, key_password, dialect)
    result['total'] = len(keystore.entries) + (len(missing) if module.check_mode else 0)
    # In check mode with keys to create, the digest of a keystore that does not exist yet is unknown.
    result['digest'] = _keystore.digest(keystore) if not (module.check_mode and missing) else None
    after_secret = secret + missing if module.check_mode else [e.alias for e in keystore.entries if e.kind == 'secret']
    return existed, diff_text(secret), diff_text(after_secret)


def refuse_unknown_entries(module, keystore):
    """The python backend does not add keys beside secret keys of a layout neither dialect writes."""
    unknown = keystore.secret_dialects().get(None)
    if unknown and module.params['backend'] == 'python':
        module.fail_json(msg='%s holds keys sealed in a layout neither OpenJDK\'s nor IBM\'s keytool writes: %s. Keys added by '
                         'the python backend might not be readable by the Java runtime that wrote them; use backend: '
                         'keytool. Nothing was changed.' % (module.params['path'], _keystore.name_aliases(unknown)))


def write_keys(module, result, keystore, data, missing, key_password, dialect):
    """Seal the missing keys (or let keytool), verify if asked, keep a backup, replace the file atomically."""
    p = module.params
    path, password = p['path'], p['password']
    existed = data is not None
    if p['backend'] == 'keytool':
        keytool = _keystore.Keytool(p['keytool_path'], p['java_home'], run=_keystore.module_runner(module))
        new_data, keystore, result['keytool'] = _keytool.add_keys(keytool, path, keystore, data, missing, password,
                                                                  key_password, p['processes'])
        # The host's keytool chose; a dialect the task named must be what it wrote, and never a mix.
        result['dialect'] = _keystore.resolve_dialect(keystore, p['dialect'])
    else:
        # Extends ``keystore`` in place; dump() re-reads its own output before returning it.
        new_data = _keystore.add_python(keystore, missing, password, key_password, result['iteration_count'],
                                        p['processes'], dialect, warn=module.warn)
    if p['verify_with_keytool']:
        verify(module, path, new_data, password, key_password, keystore, missing)
        result['verified_with_keytool'] = True
    if existed and p['backup']:
        result['backup_file'] = _files.backup_copy(path)
    # Owner, group and mode (FileAttributes: a replaced keystore keeps its own, a new one starts 0600) and the
    # other file options go on the temporary file before the rename.
    _files.atomic_write(path, new_data, attributes=_files.FileAttributes.from_params(p),
                        prepare=lambda temp: module.set_fs_attributes_if_different(
                            module.load_file_common_arguments(p, path=temp), False))
    return keystore


def verify(module, path, data, password, key_password, keystore, new_aliases):
    """Have the host's keytool decrypt the entries from a private copy before the real file is replaced.

    With one password for store and keys (EKM's way) every entry is copied; keys under their own
    key password can only be copied one by one, so then only the new ones are checked.
    """
    keytool = _keystore.Keytool(module.params['keytool_path'], module.params['java_home'],
                                run=_keystore.module_runner(module))
    # Beside the keystore, under its lock: a run killed here leaves a marked directory that the next run removes.
    with _files.private_workdir(path, 'verify') as workdir:
        copy = os.path.join(workdir, 'candidate.jck')
        _files.create_file(copy, data)
        _files.fault_point('keystore-verify')
        aliases = [e.alias for e in keystore.entries if e.kind == 'secret'] if key_password == password else new_aliases
        try:
            keytool.verify(copy, password, key_password, aliases, workdir=workdir)
        except _keystore.KeystoreError as exc:
            module.fail_json(msg='The JRE at %s cannot read the keys this module wrote, so %s was left as it was: %s '
                                 'Use backend: keytool so that this JRE writes the keys itself.' % (keytool.path, path, exc))


if __name__ == '__main__':
    main()
