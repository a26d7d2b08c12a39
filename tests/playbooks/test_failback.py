# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/failback.yml after the redundant EKM served writes while the primary was stopped.

The demo's two local "hosts" (one ``ekm_home`` each, the stand-in EKM on two ports of 127.0.0.1; run under the lab
lock): site.yml, cartridges through the primary, the primary stopped, cartridges through the redundant from two
drives neither server knew, the primary started again. sync.yml then refuses (the redundant's KeyGroups.xml changed
locally); failback.yml keeps the redundant's files in a verified set, the usage records in the ledger, adds the two
drives to the primary through the stand-in's ADDDRIVE, and syncs: both servers' files equal, both keystores as they
were, every cartridge reads back through both; those reads (usage records) are no change of the failback's files, so
the second run changes nothing, and the ledger keeps every failover record.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'demo'))
import run_demo  # noqa: E402  pylint: disable=wrong-import-position,import-error

PORT = 38311
NEW_DRIVES = ('FBNEW001', 'FBNEW002')


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def drives(path):
    """Serial numbers in a stand-in drive table (magic, version, count, entries of UTF, UTF, long, long, int, CRC)."""
    with open(path, 'rb') as f:
        data = f.read()
    pos, found = 8 + 2 + 4, []
    for _entry in range(struct.unpack('>i', data[10:14])[0]):
        serials = []
        for _text in range(2):
            size = struct.unpack('>H', data[pos:pos + 2])[0]
            serials.append(data[pos + 2:pos + 2 + size].decode())
            pos += 2 + size
        pos += 8 + 8 + 4
        found.append(serials[0])
    return sorted(found)


def files(host):
    base = run_demo.home(host)
    return {'keystore': os.path.join(base, 'keystore', 'EKMKeys.jck'), 'keygroups': os.path.join(base, 'KeyGroups.xml'),
            'drivetable': os.path.join(base, 'filedrive.table')}


def set_digests(host):
    """Every file digest recorded in the verified backup sets of a host."""
    base = os.path.join(run_demo.DEMO, 'backup', 'demo', host)
    digests = set()
    for name in os.listdir(base):
        manifest = os.path.join(base, name, 'MANIFEST.json')
        if os.path.isfile(manifest):
            with open(manifest, encoding='utf-8') as f:
                data = json.load(f)
            if data.get('verified'):
                digests.update(json.dumps(data).split('"'))
    return digests


@pytest.fixture()
def demo(tmp_path, monkeypatch):
    run_demo.ensure_collection_link()
    monkeypatch.setattr(run_demo, 'DEMO', str(tmp_path / 'demo'))
    monkeypatch.setattr(run_demo, 'PORTS', {run_demo.PRIMARY: PORT, run_demo.REDUNDANT: PORT + 1})
    run_demo.clean_start()
    os.makedirs(os.path.join(run_demo.DEMO, 'backup'))
    try:
        yield
    finally:
        run_demo.stop_servers()


def test_failback_keeps_the_redundants_files_and_drives_and_syncs(demo):  # pylint: disable=redefined-outer-name,unused-argument
    archive, sha = run_demo.build_standin()
    inventory = run_demo.write_inventory(archive, sha, [{'prefix': 'FBK', 'first': 1, 'count': 8}])
    run_demo.playbook(inventory, 'playbooks/site.yml')
    run_demo.write_cartridges(run_demo.PRIMARY, 3, 'a')
    assert 'stopped' in run_demo.ekmctl(run_demo.PRIMARY, 'stop').stdout

    os.makedirs(os.path.join(run_demo.DEMO, 'cartridges'), exist_ok=True)
    failover = {}
    for i, drive in enumerate(NEW_DRIVES * 2):
        failover['FB%04d' % i] = run_demo.tapeclient.write_cartridge(
            ('127.0.0.1', PORT + 1), drive, os.path.join(run_demo.DEMO, 'cartridges', 'b-%02d.cart' % i),
            payload=b'failover %d\n' % i, volser='FB%04d' % i)['alias'].lower()
    keystores = {host: sha256(files(host)['keystore']) for host in (run_demo.PRIMARY, run_demo.REDUNDANT)}
    redundant_before = {kind: sha256(path) for kind, path in files(run_demo.REDUNDANT).items()}
    assert redundant_before['keygroups'] != sha256(files(run_demo.PRIMARY)['keygroups'])
    assert run_demo.ekmctl(run_demo.PRIMARY, 'start').returncode == 0
    _recap, out = run_demo.playbook(inventory, 'playbooks/sync.yml', expect_fail=True)
    assert 'changed locally since the last sync' in out

    add = json.dumps({'ekm_failback_add_drive_command': [
        sys.executable, os.path.join(ROOT, 'roles', 'standin', 'files', 'tapeclient.py'), 'adddrive',
        '--server', '127.0.0.1:%d' % PORT, '--drive', '@DRIVE@']})
    # Check mode changes nothing and says what it would do.
    primary_before = {kind: sha256(path) for kind, path in files(run_demo.PRIMARY).items()}
    _recap, out = run_demo.playbook(inventory, 'playbooks/failback.yml', '-e', add, '--check', '--diff')
    assert {kind: sha256(path) for kind, path in files(run_demo.REDUNDANT).items()} == redundant_before
    assert {kind: sha256(path) for kind, path in files(run_demo.PRIMARY).items()} == primary_before
    assert 'ekm-redundant: changed locally since the last sync: keygroups, drivetable' in out, out[-3000:]
    assert 'to be added to ekm-primary unless it knows them (check mode: nothing was added): FBNEW001, FBNEW002' in out, out[-3000:]

    recap, out = run_demo.playbook(inventory, 'playbooks/failback.yml', '-e', add)
    assert recap[run_demo.REDUNDANT]['changed'] > 0
    assert 'drives added to ekm-primary: FBNEW001, FBNEW002' in out, out[-3000:]
    # The redundant's files of the failover are in a verified set; its drives are on the primary; the servers agree.
    assert set(redundant_before.values()) <= set_digests(run_demo.REDUNDANT)
    assert set(NEW_DRIVES) <= set(drives(files(run_demo.PRIMARY)['drivetable']))
    for kind in ('keystore', 'keygroups', 'drivetable'):
        assert sha256(files(run_demo.PRIMARY)[kind]) == sha256(files(run_demo.REDUNDANT)[kind]), kind
    assert ledger_aliases(failover) == {v: [a] for v, a in failover.items()}, 'usage records of the failover are missing from the ledger'
    # No key lost or changed: the keystores are the ones both servers had before the failover.
    assert {host: sha256(files(host)['keystore']) for host in keystores} == keystores
    # Cartridges read through both servers between two runs: new usage records in EKM's metadata files, no change of the
    # files the failback manages; the second run is the plain sync and changes nothing.
    for host in (run_demo.PRIMARY, run_demo.REDUNDANT):
        assert run_demo.read_all(host) == (7, 7)
    recap, out = run_demo.playbook(inventory, 'playbooks/failback.yml', '-e', add)
    assert all(c['changed'] == 0 for c in recap.values()), out[-4000:]
    assert 'no local change since the last sync' in out
    recap, out = run_demo.playbook(inventory, 'playbooks/sync.yml')
    assert all(c['changed'] == 0 for c in recap.values()), out[-4000:]
    # The reads reach the ledger with the next collection; the failover's records are still there.
    run_demo.playbook(inventory, 'playbooks/collect_ledger.yml')
    assert ledger_aliases(failover) == {v: [a] for v, a in failover.items()}


def ledger_aliases(volsers):
    """The aliases the controller's ledger records for each VolSer."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ledger  # pylint: disable=import-outside-toplevel
    ledger = _ledger.Ledger.load(os.path.join(run_demo.DEMO, 'ekm-ledger', 'demo-key-ledger.jsonl'))
    return {volser: [a.lower() for a in ledger.aliases_for_volser(volser)] for volser in volsers}
