# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``ansible-playbook -vvv --diff`` of the modules' runs shows no password and no key bytes."""
from __future__ import annotations

import base64
import os
import subprocess
import sys

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks
from ansible_collections.tapecrypt.ekm.tests.fault import faults

PLAYBOOK = '''
- hosts: localhost
  gather_facts: false
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ python }}"
    pw: "{{ secret }}"
  tasks:
    - tapecrypt.ekm.keystore: {path: "{{ home }}/EKMKeys.jck", password: "{{ pw }}", ranges: [DCA001-008], iteration_count: 20, backup: true}
    - tapecrypt.ekm.keystore: {path: "{{ home }}/EKMKeys.jck", password: "{{ pw }}", ranges: [DCA001-010], iteration_count: 20, backup: true}
    - tapecrypt.ekm.keystore_info: {path: "{{ home }}/EKMKeys.jck", password: "{{ pw }}", fingerprints: true}
    - tapecrypt.ekm.config:
        path: "{{ home }}/KeyManagerConfig.properties"
        settings: {config.keystore.password: "{{ pw }}", Audit.handler.file.size: "1000"}
        backup: true
    - tapecrypt.ekm.backup:
        keystore_path: "{{ home }}/EKMKeys.jck"
        config_path: "{{ home }}/KeyManagerConfig.properties"
        password: "{{ pw }}"
        dest: "{{ home }}/../dest"
        site: dc1
        host: ekm1
      register: made
    - tapecrypt.ekm.restore:
        source: "{{ made.set_path }}"
        site: dc1
        host: ekm1
        keystore_path: "{{ home }}/EKMKeys.jck"
        config_path: "{{ home }}/KeyManagerConfig.properties"
        password: "{{ pw }}"
      check_mode: true
'''


def test_verbose_diff_output_holds_no_password_and_no_key_bytes(tmp_path, tally):
    secret = 'Scan-Me-Store-PW-7f3a'
    home = tmp_path / 'ekm'
    home.mkdir()
    (tmp_path / 'dest').mkdir()
    (tmp_path / 'site.yml').write_text(PLAYBOOK)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(faults.ROOT, '.build'), ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCALHOST_WARNING='false', ANSIBLE_INVENTORY_UNPARSED_WARNING='false',
               HOME=str(tmp_path), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'), ANSIBLE_REMOTE_TEMP=str(tmp_path / 'rtmp'))
    bin_dir = os.path.dirname(sys.executable)
    proc = subprocess.run([os.path.join(bin_dir, 'ansible-playbook'), '-vvv', '--diff', '-i', 'localhost,',
                           '-e', 'home=%s python=%s secret=%s' % (home, sys.executable, secret), str(tmp_path / 'site.yml')],
                          env=env, capture_output=True, text=True, check=False, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    with open(home / 'EKMKeys.jck', 'rb') as f:
        keystore = _jceks.load(f.read(), secret)
    keys = [_jceks.unseal(e, secret)[1] for e in keystore.entries]
    assert len(keys) == 16
    forms = [secret]
    for key in keys:
        forms += [key.hex(), key.hex().upper(), base64.b64encode(key).decode(), base64.b64encode(key[:12]).decode()[:16]]
    found = [form for form in forms if form in output]
    tally.record('-vvv --diff output scan', not found)
    assert not found, found[:3]
