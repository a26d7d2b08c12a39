# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The whole story on an IBM-dialect site, with the collection's real playbooks.

``tests/demo/run_demo.py --dialect ibm`` in a temporary directory: two local "hosts" whose Java
home says it is IBM's JRE, so the primary role gives the new keystore the IBM JRE's dialect by
itself; site.yml (twice, the second run changing nothing), cartridges written through the
primary, add_keys.yml, sync.yml and verify.yml, backup.yml, every cartridge read through the
redundant EKM with the primary stopped, the primary's keystore restored with restore.yml and
every cartridge read through it; verify.yml names the lost primary and the redundant that served alone until
failback.yml brings the site back. The stand-in EKM serves both from IBM-dialect keystores.
Uses ports 38021 and 38022 of 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def demo(tmp_path):
    """The demo's directory; the stand-ins it leaves running are stopped afterwards, whatever happened."""
    directory = tmp_path / 'demo'
    yield directory
    for host in ('ekm-primary', 'ekm-redundant'):
        ekmctl = directory / host / 'bin' / 'ekmctl'
        if ekmctl.exists():
            subprocess.run([str(ekmctl), 'stop'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=120)


def test_ibm_dialect_site_end_to_end(demo):
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'demo', 'run_demo.py'), '--dialect', 'ibm',
                           '--dir', str(demo), '--port', '38021'],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:]
    report = json.loads((demo / 'report.json').read_text(encoding='utf-8'))
    assert report['dialect'] == 'ibm'
    assert report['in_sync'] is True
    # Ten through the primary, then those the library wrote through the redundant while the primary was down.
    written = report['cartridges']['written']
    assert written == report['cartridges']['read_back'] == 10 + report['failback']['failover_cartridges']
    # Ten or more cartridges with VolSers, EKM's metadata rotated at least twice: the ledger and its backup copy list all.
    ledger = report['ledger']
    assert ledger['rotations'] >= 2 and ledger['in_metadata_files'] < ledger['cartridges']
    assert ledger['cartridges'] >= 10 and ledger['cartridges'] == ledger['in_ledger'] == ledger['in_backup_copy']
    servers = report['servers']
    assert {s['dialect'] for s in servers.values()} == {'ibm'}
    assert {s['keys'] for s in servers.values()} == {256}
    assert len({s['digest'] for s in servers.values()}) == 1
    assert all(s['newest_backup'] for s in servers.values())
    # OpenJDK's keytool cannot load what the site now holds: the keys really are in IBM's dialect.
    assert 'refused by OpenJDK keytool' in proc.stdout and 'Invalid secret key format' in proc.stdout
    assert 'read back %d of %d cartridges through ekm-redundant' % (written, written) in proc.stdout
    assert 'read back %d of %d cartridges through the restored primary' % (written, written) in proc.stdout
    assert 'second run: ekm-primary changed=0, ekm-redundant changed=0' in proc.stdout
