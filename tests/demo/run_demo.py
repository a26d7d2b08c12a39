# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``make demo``: the collection's procedures on this machine, without root, under ``demo/``.

Each step runs the collection's real playbooks with ``ansible-playbook`` against local "hosts"
(``ansible_connection: local``, one ``ekm_home`` per host), prints what happened, and the run
ends with ``demo/report.json`` (DESIGN.md section 7). Running it again changes nothing that
need not change.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO = os.path.join(ROOT, 'demo')
BIN = os.path.dirname(os.path.abspath(sys.executable))
COLLECTIONS = os.path.join(ROOT, '.build')
PASSWORD = 'demo-keystore-pass'


def ensure_collection_link():
    link = os.path.join(COLLECTIONS, 'ansible_collections', 'tapecrypt', 'ekm')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)


def write_inventory():
    hosts = {
        'ekm-primary': {'ekm_home': os.path.join(DEMO, 'ekm-primary')},
    }
    inventory = {
        'all': {
            'vars': {
                'ansible_connection': 'local',
                'ansible_python_interpreter': sys.executable,
                'demo_keystore_password': PASSWORD,
                'demo_key_ranges': [{'prefix': 'DMA', 'first': 1, 'count': 256}],
            },
            'children': {
                'ekm_primary': {'hosts': {'ekm-primary': hosts['ekm-primary']}},
            },
        }
    }
    os.makedirs(DEMO, exist_ok=True)
    path = os.path.join(DEMO, 'inventory.yml')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(inventory, f, indent=2)  # JSON is YAML
    return path, hosts


def playbook(inventory, name, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_STDOUT_CALLBACK='default',
               ANSIBLE_DISPLAY_SKIPPED_HOSTS='0', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory, name] + list(extra)
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    with open(os.path.join(DEMO, 'ansible.log'), 'a', encoding='utf-8') as log:
        log.write('$ %s\n%s\n' % (' '.join(cmd), proc.stdout))
    recap = {}
    for host, counts in re.findall(r'^(\S+)\s+:\s+(ok=.*)$', proc.stdout, re.M):
        recap[host] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', counts)}
    if proc.returncode != 0:
        print(proc.stdout[-4000:])
        raise SystemExit('demo step %s failed (rc=%d); see demo/ansible.log' % (name, proc.returncode))
    return recap


def keytool_count(path):
    out = subprocess.run(['keytool', '-list', '-storetype', 'JCEKS', '-keystore', path, '-storepass:env', 'KSP'],
                         env=dict(os.environ, KSP=PASSWORD, LANG='C'), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, check=True).stdout
    return int(re.search(r'Your keystore contains (\d+) entr', out).group(1))


def inventory_of(path):
    sys.path.insert(0, COLLECTIONS)
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _keystore  # pylint: disable=import-outside-toplevel
    ks, data = _keystore.read(path, PASSWORD)
    return _keystore.inventory(ks, path, data)


def main():
    ensure_collection_link()
    inventory, hosts = write_inventory()
    report = {'servers': {}}
    print('== tapecrypt.ekm demo: everything under %s' % DEMO)

    print('\n-- 1. keystore of the primary (tests/demo/keystore.yml)')
    first = playbook(inventory, 'tests/demo/keystore.yml')
    second = playbook(inventory, 'tests/demo/keystore.yml')
    path = os.path.join(hosts['ekm-primary']['ekm_home'], 'keystore', 'EKMKeys.jck')
    inv = inventory_of(path)
    changes = (first['ekm-primary']['changed'], second['ekm-primary']['changed'])
    print('   first run : changed=%d   second run: changed=%d' % changes)
    counted = keytool_count(path)
    print('   keytool -list counts %d entries; our inventory %d, ranges %s' % (counted, inv['count'], ', '.join(inv['ranges'])))
    print('   digest %s' % inv['digest'])
    if second['ekm-primary']['changed'] != 0:
        raise SystemExit('the second run changed something: the collection is not idempotent')
    report['servers']['ekm-primary'] = {'role': 'primary', 'keystore': path, 'keys': inv['count'], 'digest': inv['digest']}

    with open(os.path.join(DEMO, 'report.json'), 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write('\n')
    print('\n== report: %s' % os.path.join(DEMO, 'report.json'))
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
