# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tapecrypt.ekm.schedule role: its units pass ``systemd-analyze verify`` and the service's command really runs.

This machine has no systemd as PID 1 and no systemd-nspawn, so the timers are not run under systemd here: the proof
is ``systemd-analyze verify`` of the units the role writes, then the command of their ExecStart= (the wrapper
``tapecrypt-ekm-run``) against an SSH lab with a primary and a redundant EKM: a sync that copies, its exit status,
log and status file; a failing run (wrong keystore password) that is visible (exit status, stderr, status file).
The cron variant's lines run the same command. Needs root (tests/lab) and Java.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from eda_lab import BIN, ROOT, EdaLab

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason='the SSH lab needs root')

# The play docs/continuous-protection.md shows.
PLAY = '''---
- name: Schedule the EKM runs on this controller
  hosts: localhost
  connection: local
  gather_facts: false
  roles:
    - role: tapecrypt.ekm.schedule
'''


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('schedule')
    lab = EdaLab(workdir, slot=7)
    try:
        lab.start()
        lab.provision()
        yield lab
    finally:
        lab.stop()


def _schedule(lab, root, manager, **extra):
    dirs = {name: str(root / name) for name in ('bin', 'log', 'systemd', 'cron')}
    for path in dirs.values():
        os.makedirs(path, exist_ok=True)
    user = subprocess.run(['id', '-un'], stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    args = {'ekm_schedule_inventory': lab.inventory, 'ekm_schedule_manager': manager, 'ekm_schedule_start': False,
            'ekm_schedule_user': user, 'ekm_schedule_bin_dir': dirs['bin'], 'ekm_schedule_log_dir': dirs['log'],
            'ekm_schedule_systemd_dir': dirs['systemd'], 'ekm_schedule_cron_dir': dirs['cron'],
            'ekm_schedule_collections_path': os.path.join(ROOT, '.build'), 'ekm_schedule_lock_path': lab.lock,
            'ekm_schedule_ansible_playbook': os.path.join(BIN, 'ansible-playbook')}
    args.update(extra)
    play = root / 'schedule.yml'
    play.write_text(PLAY, encoding='utf-8')
    cmd = [os.path.join(BIN, 'ansible-playbook'), str(play), '-e', json.dumps(args)]
    out = subprocess.run(cmd, env=lab.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert out.returncode == 0, out.stdout[-4000:]
    again = subprocess.run(cmd, env=lab.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    assert again.returncode == 0 and re.search(r'localhost\s*: ok=\d+\s+changed=0', again.stdout), again.stdout[-3000:]
    return dirs


def _exec_start(unit_path):
    with open(unit_path, encoding='utf-8') as handle:
        line = [l for l in handle.read().splitlines() if l.startswith('ExecStart=')][0]
    return line[len('ExecStart='):].split()


@pytest.mark.skipif(shutil.which('systemd-analyze') is None, reason='systemd-analyze is not installed')
def test_systemd_units_verify_and_the_service_command_runs(lab, tmp_path):
    dirs = _schedule(lab, tmp_path, 'systemd', ekm_schedule_eda=True,
                     ekm_schedule_eda_rulebook=shutil.which('true'), ekm_schedule_eda_vars={'ekm_eda_primary': 'primary'})
    units = sorted(os.listdir(dirs['systemd']))
    assert units == ['tapecrypt-ekm-backup.service', 'tapecrypt-ekm-backup.timer', 'tapecrypt-ekm-eda.service',
                     'tapecrypt-ekm-sync.service', 'tapecrypt-ekm-sync.timer', 'tapecrypt-ekm-verify.service',
                     'tapecrypt-ekm-verify.timer']
    paths = [os.path.join(dirs['systemd'], u) for u in units]
    proc = subprocess.run(['systemd-analyze', 'verify', '--man=no'] + paths, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    # Only complaints about our units count (the machine's own units are not booted here).
    ours = [l for l in proc.stdout.splitlines() if 'tapecrypt-ekm' in l]
    assert proc.returncode == 0 and not ours, proc.stdout
    # The timer names its service; the service runs the wrapper.
    with open(os.path.join(dirs['systemd'], 'tapecrypt-ekm-sync.timer'), encoding='utf-8') as handle:
        assert 'OnCalendar=*:0/15' in handle.read()
    argv = _exec_start(os.path.join(dirs['systemd'], 'tapecrypt-ekm-sync.service'))
    assert argv == [os.path.join(dirs['bin'], 'tapecrypt-ekm-run'), 'sync']

    # A change on the primary, then the service's command: it copies, exits 0, logs, records its status.
    lab.write_cartridge()
    assert lab.digests('primary') != lab.digests('redundant')
    run = subprocess.run(argv, env=lab.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert lab.digests('primary') == lab.digests('redundant')
    with open(os.path.join(dirs['log'], 'sync.status'), encoding='utf-8') as handle:
        assert handle.read().split()[0] == '0'
    with open(os.path.join(dirs['log'], 'sync.log'), encoding='utf-8') as handle:
        log = handle.read()
    assert 'Wait for other sync, verify and backup runs' in log and 'exit status 0' in log

    # A failing run is visible: exit status, stderr, status file.
    bad = subprocess.run(argv + ['-e', '{"ekm_sync_password": "wrong-password"}'], env=lab.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    assert bad.returncode != 0
    assert 'sync (tapecrypt.ekm.sync) FAILED with exit status %d' % bad.returncode in bad.stderr
    with open(os.path.join(dirs['log'], 'sync.status'), encoding='utf-8') as handle:
        assert handle.read().split()[0] == str(bad.returncode)


def test_cron_lines_run_the_same_command(lab, tmp_path):
    dirs = _schedule(lab, tmp_path, 'cron')
    with open(os.path.join(dirs['cron'], 'tapecrypt-ekm'), encoding='utf-8') as handle:
        lines = [l for l in handle.read().splitlines() if l and not l.startswith('#') and '=' not in l.split()[0]]
    assert [l.split()[:5] for l in lines] == [['*/15', '*', '*', '*', '*'], ['5', '*', '*', '*', '*'],
                                              ['30', '2', '*', '*', '*']]
    verify = [l for l in lines if l.split()[7:8] == ['verify']][0].split()
    assert verify[6:] == [os.path.join(dirs['bin'], 'tapecrypt-ekm-run'), 'verify', '>', '/dev/null']
    # As cron runs it (through /bin/sh, stdout discarded): a verify of a site in sync prints nothing, exits 0.
    proc = subprocess.run(['/bin/sh', '-c', ' '.join(verify[6:])], env=lab.env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 0 and proc.stderr == '', proc.stderr
    with open(os.path.join(dirs['log'], 'verify.log'), encoding='utf-8') as handle:
        assert 'in sync' in handle.read()
