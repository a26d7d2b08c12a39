# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""verify.yml on a real two-server site (the demo's local hosts and stand-in EKMs), healthy and then broken.

A site from site.yml, cartridges with VolSers, the ledger collected; verify.yml passes and writes its
JSON report and HTML page. Then: a sync-failure record in the primary's audit log (the stand-in has
no EKM-to-EKM sync, so the test writes the record), the redundant's EKM stopped, its configuration
deleted: each is named by verify.yml. The healthy table is the sample in docs/health-and-ledger.md;
``TAPECRYPT_UPDATE_DOCS=1`` writes the new one there. Uses ports 38041 and 38042 of 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'demo'))

import run_demo  # noqa: E402  pylint: disable=wrong-import-position

DOCS = os.path.join(ROOT, 'docs', 'health-and-ledger.md')
SAMPLE = r'(<!-- verify sample %s: .*? -->\n```\n)(.*?)(```\n)'


@pytest.fixture
def site(tmp_path):
    run_demo.DEMO = str(tmp_path / 'site')
    run_demo.PORTS = {run_demo.PRIMARY: 38041, run_demo.REDUNDANT: 38042}
    run_demo.ensure_collection_link()
    run_demo.clean_start()
    archive, sha256 = run_demo.build_standin()
    os.makedirs(os.path.join(run_demo.DEMO, 'backup'))
    inventory = run_demo.write_inventory(archive, sha256, [{'prefix': 'DMA', 'first': 1, 'count': 8}])
    yield inventory
    run_demo.stop_servers()


def messages(out):
    """The lines of every debug message list in a playbook's output."""
    found = []
    for block in re.findall(r'"msg": \[(.*?)\]\n', out, re.S):
        found.append([json.loads(x) for x in re.findall(r'^\s*(".*?"),?$', block, re.M)])
    return found


def failure(out):
    """The lines of the message of the run's failed task (one JSON line: "fatal: [host]: FAILED! => {...}")."""
    found = re.findall(r'^fatal: \[[^\]]+\]: FAILED! => (\{.*\})$', out, re.M)
    assert found, 'no failed task in the output'
    return json.loads(found[-1])['msg']


def normalized(lines):
    """The output without what differs from run to run: hex digests, times, ages, the site's directory."""
    text = '\n'.join(line.rstrip() for line in lines).replace(run_demo.DEMO, '/srv/site')
    text = re.sub(r'\b[0-9a-f]{16}\b', 'DIGEST', text)
    text = re.sub(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z', 'TIME', text)
    return re.sub(r'\d+\.\d h', 'N.N h', text)


def check_docs_sample(name, table):
    with open(DOCS, encoding='utf-8') as f:
        docs = f.read()
    match = re.search(SAMPLE % name, docs, re.S)
    assert match, 'docs/health-and-ledger.md has no verify sample block %s' % name
    if os.environ.get('TAPECRYPT_UPDATE_DOCS') == '1':
        real = '\n'.join(line.rstrip() for line in table).replace(run_demo.DEMO, '/srv/site')
        docs = docs[:match.start(2)] + real + '\n' + docs[match.end(2):]
        with open(DOCS, 'w', encoding='utf-8') as f:
            f.write(docs)
        return
    assert normalized(match.group(2).splitlines()) == normalized(table), \
        'the sample in docs/health-and-ledger.md is not what verify.yml prints; rerun with TAPECRYPT_UPDATE_DOCS=1'


def test_verify_names_a_down_service_config_drift_and_sync_failures(site):
    inventory = site
    run_demo.playbook(inventory, 'playbooks/site.yml')
    run_demo.write_cartridges(run_demo.PRIMARY, 2, 'h')
    run_demo.playbook(inventory, 'playbooks/sync.yml')     # the writes changed the key groups and the drive table
    run_demo.playbook(inventory, 'playbooks/collect_ledger.yml')

    recap, out = run_demo.playbook(inventory, 'playbooks/verify.yml')
    assert all(c['changed'] == 0 for c in recap.values()), recap
    table = [m for m in messages(out) if m and m[0].startswith('server ')][0]
    assert [line.split()[0] for line in table[1:]] == [run_demo.PRIMARY, run_demo.REDUNDANT]
    assert table[1].rstrip().endswith('primary') and table[2].rstrip().endswith('in sync')
    report_path = os.path.join(run_demo.DEMO, 'ekm-verify.json')
    with open(report_path, encoding='utf-8') as f:
        report = json.load(f)
    assert report['ok'] is True and report['problems'] == [] and set(report['audit_positions']) == set(run_demo.PORTS)
    assert report['ledger']['records'] >= 2 and report['stats']['ekm_verify_ok'] is True
    with open(os.path.join(run_demo.DEMO, 'ekm-verify.html'), encoding='utf-8') as f:
        page = f.read()
    assert 'EKM site health: OK' in page and '<td>%s</td>' % run_demo.REDUNDANT in page
    check_docs_sample('healthy', table)

    audit_dir = os.path.join(run_demo.home(run_demo.PRIMARY), 'audit')
    newest = max(os.listdir(audit_dir), key=lambda n: int(n.rsplit('.', 1)[1]))
    with open(os.path.join(audit_dir, newest), 'a', encoding='utf-8') as f:
        f.write('data_synchronization:[timestamp=2026-11-30T12:00:00.000Z message=Error sending data to other EKM\n'
                '  partner=127.0.0.1:38042 action=sync]\n')
    _recap, out = run_demo.playbook(inventory, 'playbooks/verify.yml', expect_fail=True)
    assert '%s: SYNC FAILURES: 1 in the audit log since the last check' % run_demo.PRIMARY in out
    assert 'Error sending data to other EKM' in out and 'tapecrypt.ekm.sync' in out
    _recap, out = run_demo.playbook(inventory, 'playbooks/verify.yml')
    assert 'SYNC FAILURES' not in out, 'reported once: the next check starts after it'

    run_demo.ekmctl(run_demo.REDUNDANT, 'stop')
    _recap, out = run_demo.playbook(inventory, 'playbooks/verify.yml', expect_fail=True)
    assert '%s: SERVICE DOWN: no EKM process runs with this configuration file' % run_demo.REDUNDANT in out
    os.remove(os.path.join(run_demo.home(run_demo.REDUNDANT), 'KeyManagerConfig.properties'))
    _recap, out = run_demo.playbook(inventory, 'playbooks/verify.yml', expect_fail=True)
    assert '%s: CONFIG DRIFT: the configuration file' % run_demo.REDUNDANT in out
    assert 'tapecrypt.ekm.site' in out
    lines = failure(out)
    assert lines[0] == 'The EKM site is not healthy; nothing was changed:'
    check_docs_sample('broken', lines)
    with open(report_path, encoding='utf-8') as f:
        assert json.load(f)['stats'] == {'ekm_verify_ok': False, 'ekm_verify_problems': 2, 'ekm_verify_servers_down': 1}


def test_a_rebuilt_host_refuses_a_set_lacking_keys_that_cartridges_use(site):
    """Only the ledger can object: the host has no keystore, and the set is a verified one, just older than the keys."""
    inventory = site
    run_demo.playbook(inventory, 'playbooks/site.yml')
    first_set = run_demo.newest_backup(run_demo.PRIMARY)
    assert first_set, 'site.yml backs up the keys it made before it serves them'
    run_demo.playbook(inventory, 'playbooks/add_keys.yml', '-e',
                      json.dumps({'ekm_add_key_ranges': [{'prefix': 'DMB', 'first': 1, 'count': 4}]}))
    os.makedirs(os.path.join(run_demo.DEMO, 'cartridges'))
    used = set()
    server = ('127.0.0.1', run_demo.PORTS[run_demo.PRIMARY])
    for i in range(12):     # the stand-in hands out the served keys round robin: every one of the 12 is used
        path = os.path.join(run_demo.DEMO, 'cartridges', 'L%02d.cart' % i)
        written = run_demo.tapeclient.write_cartridge(server, 'DRIVE01', path, b'ledger restore', volser='LDG%03d' % i,
                                                      wwn='57574E414D453031')
        used.add(written['alias'].lower())
    assert {a for a in used if a.startswith('dmb')}, used
    run_demo.playbook(inventory, 'playbooks/collect_ledger.yml')

    keystore = os.path.join(run_demo.home(run_demo.PRIMARY), 'keystore', 'EKMKeys.jck')
    os.remove(keystore)                         # a rebuilt host: no keystore that could object
    _recap, out = run_demo.playbook(inventory, 'playbooks/restore.yml', '-e', 'restore_host=%s' % run_demo.PRIMARY,
                                    '-e', 'restore_set=%s' % os.path.basename(first_set), expect_fail=True)
    newer = sorted(a for a in used if a.startswith('dmb'))
    assert 'lacks %d key alias(es) that cartridges need, according to the key-usage ledger' % len(newer) in out, \
        out[-3000:]
    assert all(a in out.lower() for a in newer) and 'allow_cartridge_key_loss' in out
    assert not os.path.exists(keystore), 'nothing was restored'
