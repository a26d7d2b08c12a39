# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tapecrypt.ekm.write_report through ansible-playbook: the report the verify_report filter makes, written on the
controller as verify.yml writes it (JSON without the page, the page on its own), in check mode not at all."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import ansible_collections.tapecrypt.ekm as collection

COLLECTIONS_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(collection.__path__[0]))))
PLAYBOOK = [sys.executable, '-m', 'ansible.cli.playbook']

PLAY = textwrap.dedent('''
    - hosts: localhost
      gather_facts: false
      vars:
        inputs:
          ekm1: {keystore: {keystore: {exists: true, count: 3, digest: "{{ 'cd' * 32 }}"}}}
          ekm2: {keystore: {keystore: {exists: true, count: 3, digest: "{{ 'ab' * 32 }}"}}, sync: {in_sync: false}}
      tasks:
        # Once: a variable would be templated again at every use, with a new "generated" time.
        - name: Decide the report
          ansible.builtin.set_fact:
            report: "{{ inputs | tapecrypt.ekm.verify_report('ekm1', ['ekm2'], none, false) }}"
        - name: Write
          tapecrypt.ekm.write_report:
            report: "{{ report }}"
            json_path: "{{ out }}/r.json"
            html_path: "{{ out }}/r.html"
          register: written
        - name: In check mode
          tapecrypt.ekm.write_report:
            report: "{{ report }}"
            json_path: "{{ out }}/check.json"
          check_mode: true
          register: checked
        - name: Into a directory that does not exist
          tapecrypt.ekm.write_report:
            report: "{{ report }}"
            json_path: "{{ out }}/first.json"
            html_path: "{{ out }}/missing/r.html"
          register: missing
          ignore_errors: true
        - name: With a symbolic mode
          tapecrypt.ekm.write_report:
            report: "{{ report }}"
            json_path: "{{ out }}/sym.json"
            mode: u=rw
          register: symbolic
          ignore_errors: true
        - name: A report without its page
          tapecrypt.ekm.write_report:
            report: {ok: true}
            html_path: "{{ out }}/nopage.html"
          register: nopage
          ignore_errors: true
        - name: Keep the results
          ansible.builtin.copy:
            content: "{{ {'written': written, 'checked': checked, 'missing': missing, 'symbolic': symbolic,
                          'nopage': nopage, 'report': report} | to_json }}"
            dest: "{{ out }}/results.json"
''')


def test_write_report_writes_what_the_filter_decided(tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'r.json').write_text('old')
    os.chmod(out / 'r.json', 0o600)
    book = tmp_path / 'play.yml'
    book.write_text(PLAY)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_NOCOLOR='1',
               ANSIBLE_LOCAL_TEMP=str(tmp_path / 'local-tmp'), ANSIBLE_RETRY_FILES_ENABLED='0')
    env.pop('ANSIBLE_CONFIG', None)
    proc = subprocess.run(PLAYBOOK + ['-i', 'localhost,', '-c', 'local', '-e', 'ansible_python_interpreter=' + sys.executable,
                                      '-e', json.dumps({'out': str(out)}), str(book)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=600)
    results = json.loads((out / 'results.json').read_text())
    report = results['report']
    written = results['written']
    assert written['changed'] is False and written['written'] == [str(out / 'r.json'), str(out / 'r.html')], proc.stdout
    body = json.loads((out / 'r.json').read_text())
    assert body == {k: v for k, v in report.items() if k != 'html'}
    assert body['ok'] is False and any('ekm2' in p for p in body['problems'])
    assert (out / 'r.html').read_text() == report['html']
    assert stat.S_IMODE(os.stat(out / 'r.json').st_mode) == 0o640 and stat.S_IMODE(os.stat(out / 'r.html').st_mode) == 0o640
    assert results['checked']['written'] == [] and not (out / 'check.json').exists()
    assert results['missing']['failed'] and 'directory does not exist' in results['missing']['msg']
    assert not (out / 'first.json').exists(), 'a missing directory for one file leaves the other unwritten'
    assert results['symbolic']['failed'] and 'octal' in results['symbolic']['msg'] and not (out / 'sym.json').exists()
    assert results['nopage']['failed'] and 'no HTML page' in results['nopage']['msg']
    leftovers = [n for n in os.listdir(out) if n.startswith('.')]
    assert leftovers == [], 'no temporary file is left behind'
