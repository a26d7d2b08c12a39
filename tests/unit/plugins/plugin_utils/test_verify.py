# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import copy
import datetime
import re

from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _verify

NOW = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.timezone.utc)
KS = {'keystore': {'exists': True, 'count': 256, 'digest': 'ab' * 32, 'path': '/opt/ekm/keystore/EKMKeys.jck'}}
INFO = {'service': {'state': 'running', 'reasons': []}, 'config': {'exists': True, 'drift': [], 'path': '/opt/ekm/K.p'},
        'audit': {'records': [], 'summary': {'last_served': None}}, 'metadata': {'gap': False}}
BACKUP = {'found': True, 'age_hours': 1.5, 'older_than_newest_key': False}
LEDGER = {'ledger': {'path': '/site/ledger.jsonl', 'records': 3,
                     'collected': {'ekm1': '2026-11-30T11:00:00Z', 'ekm2': '2026-11-30T11:00:00Z'}},
          'aliases_used': {'dca1': ['V1', 'V2'], 'dca2': ['V3']}}


def healthy():
    return {'ekm1': {'keystore': KS, 'info': INFO, 'backup': BACKUP},
            'ekm2': {'keystore': KS, 'info': INFO, 'backup': BACKUP,
                     'sync': {'in_sync': True, 'drift': {}, 'last_sync': '2026-11-30T10:00:00Z'}}}


def build(inputs, **kw):
    kw.setdefault('ledger', LEDGER)
    return _verify.build(inputs, 'ekm1', ['ekm2'], now=NOW, **kw)


def states(report, host):
    return [s['state'] for r in report['servers'] if r['server'] == host for s in r['states']]


def test_a_healthy_site_is_ok():
    report = build(healthy())
    assert report['ok'] and report['problems'] == [] and report['hints'] == []
    assert [r['state'] for r in report['servers']] == ['primary', 'in sync']
    assert report['stats'] == {'ekm_verify_ok': True, 'ekm_verify_problems': 0, 'ekm_verify_servers_down': 0}
    assert report['ledger']['cartridges_per_key'] == {'dca1': 2, 'dca2': 1}


def test_service_down_and_config_drift_are_named():
    inputs = healthy()
    info = copy.deepcopy(INFO)
    info['service'] = {'state': 'down', 'reasons': ['cannot connect to 127.0.0.1:3801: Connection refused']}
    info['config'] = {'exists': False, 'drift': [{'key': 'a', 'status': 'missing'}], 'path': '/opt/ekm/K.p'}
    inputs['ekm2']['info'] = info
    report = build(inputs)
    assert not report['ok'] and states(report, 'ekm2') == ['SERVICE DOWN', 'CONFIG DRIFT']
    assert report['problems'] == ['ekm2: SERVICE DOWN: cannot connect to 127.0.0.1:3801: Connection refused',
                                  'ekm2: CONFIG DRIFT: the configuration file /opt/ekm/K.p is gone']
    assert report['stats']['ekm_verify_servers_down'] == 1
    assert any('tapecrypt.ekm.site' in h for h in report['hints'])
    inputs['ekm2']['info']['config'] = {'exists': True, 'path': 'p', 'drift': [{'key': 'TransportListener.tcp.port',
                                                                                'status': 'differs'}]}
    assert build(inputs)['problems'][1] == 'ekm2: CONFIG DRIFT: TransportListener.tcp.port differs'


def test_sync_failures_in_the_audit_log_and_a_redundant_that_served():
    inputs = healthy()
    inputs['ekm1']['info'] = dict(INFO, audit={'records': [
        {'kind': 'served', 'timestamp': 'T0'},
        {'kind': 'sync_failure', 'timestamp': '2026-11-30T11:50:00Z', 'type': 'data_synchronization',
         'fields': {'message': 'Error sending data to other EKM'}}], 'summary': {}})
    inputs['ekm2']['info'] = dict(INFO, audit={'records': [], 'summary': {'last_served': '2026-11-30T11:00:00Z'}})
    ledger = copy.deepcopy(LEDGER)
    ledger['ledger']['collected']['ekm2'] = '2026-11-30T10:30:00Z'
    report = build(inputs, ledger=ledger)
    assert report['problems'] == [
        'ekm1: SYNC FAILURES: 1 in the audit log since the last check, the last at 2026-11-30T11:50:00Z: '
        'Error sending data to other EKM',
        'ekm2: SERVED SINCE SYNC: keys served at 2026-11-30T11:00:00Z, last sync 2026-11-30T10:00:00Z; the site is not '
        'back yet (not its usage records collected)']
    assert all(re.search(r'playbook tapecrypt\.ekm\.sync\b', h) for h in report['hints'])
    assert report['served_since_sync'] == {'ekm2': '2026-11-30T11:00:00Z'}


def test_a_redundant_that_served_is_reported_until_the_site_is_back():
    inputs = healthy()
    inputs['ekm2']['info'] = dict(INFO, audit={'records': [], 'summary': {'last_served': '2026-11-30T11:00:05.250Z'}})
    first = build(inputs)
    assert states(first, 'ekm2') == ['SERVED SINCE SYNC']
    assert first['servers'][1]['state'].startswith('in sync; SERVED SINCE SYNC: keys served at 2026-11-30T11:00:05.250Z')
    # The next check reads the audit log on from where the first stopped: nothing new, yet the state stays while the
    # redundant's usage records are not collected after it served, or the primary is down, or the two differ.
    inputs['ekm2']['info'] = INFO
    report = build(inputs, previous=first)
    assert report['problems'] == ['ekm2: SERVED SINCE SYNC: keys served at 2026-11-30T11:00:05.250Z, last sync '
                                  '2026-11-30T10:00:00Z; the site is not back yet (not its usage records collected)']
    assert any('tapecrypt.ekm.collect_ledger' in h and 'tapecrypt.ekm.sync' in h and 'tapecrypt.ekm.failback' in h
               for h in report['hints'])
    ledger = copy.deepcopy(LEDGER)
    ledger['ledger']['collected']['ekm2'] = '2026-11-30T11:30:00Z'
    inputs['ekm1']['info'] = dict(INFO, service={'state': 'down', 'reasons': ['x']})
    inputs['ekm2']['sync'] = dict(inputs['ekm2']['sync'], in_sync=False, drift={'keygroups': {'status': 'local_change'}})
    report = build(inputs, ledger=ledger, previous=report)
    assert states(report, 'ekm2') == ['SERVED SINCE SYNC', 'DRIFT']
    assert 'not back yet (not in sync with the primary, not the primary serving)' in report['problems'][-2]
    assert report['served_since_sync'] == {'ekm2': '2026-11-30T11:00:05.250Z'}
    # Brought back: in sync, the primary serving, the records collected after it served.
    inputs = healthy()
    report = build(inputs, ledger=ledger, previous=report)
    assert report['ok'] and report['served_since_sync'] == {}
    assert build(inputs, ledger=None, previous=first)['ok'], 'without a ledger there are no records to wait for'
    assert not build(inputs, previous=first)['ok'], 'the records were collected before it served'
    # Without a ledger, a redundant that served is a problem while the primary is down or the two differ.
    inputs['ekm2']['info'] = dict(INFO, audit={'records': [], 'summary': {'last_served': '2026-11-30T11:00:05Z'}})
    assert build(inputs, ledger=None)['ok']
    inputs['ekm1']['info'] = dict(INFO, service={'state': 'down', 'reasons': ['x']})
    assert states(build(inputs, ledger=None), 'ekm2') == ['SERVED SINCE SYNC']


def test_drift_conflict_unreachable_and_keystore_errors():
    inputs = healthy()
    inputs['ekm2']['sync'] = {'in_sync': False, 'drift': {'keystore': {'status': 'differs'}, 'x': {'status': 'same'}}}
    assert build(inputs)['problems'] == ['ekm2: DRIFT: keystore differs']
    inputs['ekm2']['sync'] = {'conflicts': [{'file': 'keystore', 'kind': 'alias_conflict'}]}
    assert states(build(inputs), 'ekm2') == ['CONFLICT']
    inputs['ekm2']['keystore'] = {'unreachable': True, 'msg': 'ssh: connect refused'}
    report = build(inputs)
    assert report['problems'] == ['ekm2: UNREACHABLE: ssh: connect refused']
    inputs['ekm2']['keystore'] = {'keystore': {'exists': False, 'path': '/k'}}
    assert build(inputs)['problems'][0] == 'ekm2: ERROR: no keystore at /k', 'no sync state without a keystore'


def test_backup_and_ledger_states():
    inputs = healthy()
    inputs['ekm1']['backup'] = dict(BACKUP, age_hours=30)
    inputs['ekm2']['backup'] = {'found': False, 'problem': 'no verified set in /srv/b'}
    ledger = copy.deepcopy(LEDGER)
    ledger['ledger']['collected'] = {'ekm1': '2026-11-28T12:00:00Z'}
    inputs['ekm2']['info'] = dict(INFO, metadata={'gap': True})
    report = build(inputs, ledger=ledger)
    assert states(report, 'ekm1') == ['BACKUP TOO OLD', 'LEDGER NOT COLLECTED']
    assert states(report, 'ekm2') == ['NO BACKUP', 'LEDGER NOT COLLECTED', 'METADATA GAP']
    assert 'ekm1: LEDGER NOT COLLECTED: last 48.0 h ago (limit 26.0 h)' in report['problems']
    assert any('tapecrypt.ekm.collect_ledger' in h for h in report['hints'])
    assert any('tapecrypt.ekm.backup' in h for h in report['hints'])
    assert build(inputs, ledger=None, check_backups=False)['ok'] is True, 'without a ledger or backups nothing else fails'
    inputs['ekm1']['backup'] = dict(BACKUP, older_than_newest_key=True, aliases_not_in_set=['DCA201-202'])
    assert states(build(inputs), 'ekm1')[0] == 'BACKUP LACKS KEYS'


def test_extra_states_from_other_checks():
    inputs = healthy()
    inputs['ekm2']['extra'] = ['INVENTORY: ekm2 has no ekm_home', {'state': 'OLDER FILES', 'detail': 'EKM runs a keystore of before'}]
    report = build(inputs)
    assert report['problems'] == ['ekm2: INVENTORY: ekm2 has no ekm_home',
                                  'ekm2: OLDER FILES: EKM runs a keystore of before']


def test_table_and_html_page():
    inputs = healthy()
    inputs['ekm2']['info'] = dict(INFO, service={'state': 'down', 'reasons': ['<script>x</script>']})
    report = build(inputs)
    lines = _verify.table(report)
    assert lines[0].split() == ['server', 'role', 'keys', 'digest', 'last', 'sync', 'backup', 'age', 'state']
    assert lines[1].split()[-1] == 'primary'
    assert lines[2].startswith('ekm2 ') and lines[2].rstrip().endswith(' in sync; SERVICE DOWN: <script>x</script>')
    assert report['servers'][1]['service'] == 'down'
    page = _verify.html_page(report)
    assert page.startswith('<!DOCTYPE html>') and '<script>' not in page and '&lt;script&gt;' in page
    assert 'http' not in page and 'src=' not in page, 'no external asset'
    assert '<td>dca1</td><td>2</td>' in page and 'EKM site health: PROBLEMS' in page


def test_the_other_checks_of_verify_are_states_too():
    inputs = healthy()
    inputs['ekm1']['safety'] = {'complete': False, 'held_back_count': 2,
                                'summary': ['served: DCA001-100', 'held back: DCA101-102 (not on ekm2)']}
    inputs['ekm2']['running'] = {'stale_files': ['/opt/ekm/keystore/EKMKeys.jck']}
    report = build(inputs, site_problems=['INVENTORY: ekm1 is in both ekm_primary and ekm_redundant'])
    assert report['problems'] == [
        'INVENTORY: ekm1 is in both ekm_primary and ekm_redundant',
        'ekm1: KEYS STAGED: 2 key(s) that symmetricKeySet asks for are served nowhere yet (held back: DCA101-102 (not '
        'on ekm2)). Run tapecrypt.ekm.add_keys to finish the job: it copies, backs up and then serves them.',
        'ekm2: STALE: EKM started before EKMKeys.jck last changed: it serves older files']
    assert any('tapecrypt.ekm.sync' in h and 'tapecrypt.ekm.site' in h for h in report['hints'])
    inputs = healthy()
    inputs['ekm2'] = {'out_of_service': True}
    report = build(inputs)
    assert report['ok'] and report['servers'][1]['state'] == 'out of service'


def test_audit_positions_are_kept_for_the_next_check():
    inputs = healthy()
    inputs['ekm1']['info'] = dict(INFO, audit={'records': [], 'summary': {}, 'position': {'file': 'a.1', 'offset': 9}})
    assert build(inputs)['audit_positions'] == {'ekm1': {'file': 'a.1', 'offset': 9}}
