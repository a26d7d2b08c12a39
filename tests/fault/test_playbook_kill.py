# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""SIGKILL of ansible-playbook's whole process tree at named moments of the collection's real playbooks.

One lab for the module (tests/fault/playlab.py: a primary and a redundant stand-in EKM on this machine), provisioned
once with site.yml; every case adds a few keys, kills a run, checks, runs again and checks again, so the lab is whole
for the next case. After each kill and after each rerun the invariant (tests/fault/invariant.py) must hold; after the
rerun a cartridge written through the primary with one of the new keys must read back through the redundant.

The lab's ports are fixed: run the stage under the lab lock (flock /tmp/tapecrypt-lab.lock).
"""
from __future__ import annotations

import os

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.tests.fault import faults, invariant, playlab
from ansible_collections.tapecrypt.ekm.tests.fault.playlab import PASSWORD, PRIMARY, REDUNDANT


@pytest.fixture(scope='module')
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp('playlab')
    archive, sha256 = playlab.build_standin(root / 'dist')
    the_lab = playlab.Lab(root / 'site', archive, sha256)
    busy = [port for port in the_lab.ports.values() if not playlab.wait_port_free(port, timeout=0)]
    assert not busy, 'port(s) %s of 127.0.0.1 are in use: another lab runs (hold the lab lock) or was left running' % busy
    try:
        run = the_lab.playbook('site.yml')
        assert run.rc == 0, run
        # The cartridges' drive becomes known to the primary, and through a sync to the redundant: reading through the
        # redundant then changes nothing there (a drive it admitted by itself would be a local change of its table).
        the_lab.write_with_new_key(invariant.served_aliases(the_lab.config(PRIMARY)))
        run = the_lab.playbook('sync.yml')
        assert run.rc == 0, run
        yield the_lab
    finally:
        the_lab.stop()


def check(lab, when):
    return ['%s: %s' % (when, p) for p in invariant.check(lab.servers(), PRIMARY, PASSWORD, lab.backup_host_dir(PRIMARY))]


def cartridge(lab, new):
    """A cartridge written through the primary with a new key; every cartridge so far reads through the redundant."""
    try:
        dummy, alias = lab.write_with_new_key(new)
    except (AssertionError, OSError, playlab.tapeclient.TapeError) as exc:
        return ['the primary writes no cartridge with a new key: %s' % exc]
    return ['through the redundant: %s' % f for f in lab.read_all(REDUNDANT)]


def rerun(lab, name):
    run = lab.playbook(name)
    return [] if run.rc == 0 else ['the rerun of %s failed: %r' % (name, run)]


# --- issue 8: the invariant at every kill point of add_keys.yml ---------------------------------------------------

def add_keys_case(lab, tally, cls, kill_on=None, kill_delay=None, kill_after=None):
    new = lab.new_range()
    killed = lab.playbook('add_keys.yml', kill_on=kill_on, kill_delay=kill_delay, kill_after=kill_after)
    problems = [] if killed.killed else ['the kill point was not reached: %r' % killed]
    problems += check(lab, 'after the kill')
    problems += rerun(lab, 'add_keys.yml')
    problems += check(lab, 'after the rerun')
    problems += cartridge(lab, new)
    tally.record(cls, not problems)
    assert not problems


# The four phases of add_keys.yml (docs/architecture.md): a kill when a phase's first play starts, before any task
# of it: nothing of that phase is done, everything of the phases before it is.
PHASES = {n: r'^PLAY \[Phase %d of 4' % n for n in (1, 2, 3, 4)}


@pytest.mark.parametrize('phase', sorted(PHASES))
def test_add_keys_killed_at_a_phase_boundary(lab, tally, phase):
    add_keys_case(lab, tally, 'add_keys kill at phase %d of 4' % phase, kill_on=PHASES[phase])


def test_add_keys_killed_during_key_generation(lab, tally):
    """A random moment inside the keystore module's run on the primary."""
    add_keys_case(lab, tally, 'add_keys kill during key generation',
                  kill_on=r'^TASK \[tapecrypt\.ekm\.primary : Ensure the keys of the seed exist in the keystore\]',
                  kill_delay=faults.RNG.uniform(0.1, 0.8))


def test_add_keys_killed_at_random_moments(lab, tally):
    """Two moments anywhere in the run (it takes about 20 seconds here)."""
    for dummy in range(2):
        add_keys_case(lab, tally, 'add_keys kill at random', kill_after=faults.RNG.uniform(2, 18))


def failed_run_case(lab, tally, cls, run_failing):
    """A run that fails for want of a host or a medium: the invariant holds, and the run after the repair completes."""
    new = lab.new_range()
    failed = run_failing()
    problems = [] if failed.rc != 0 else ['add_keys.yml succeeded: %r' % failed]
    problems += check(lab, 'after the failed run')
    problems += rerun(lab, 'add_keys.yml')
    problems += check(lab, 'after the rerun')
    problems += cartridge(lab, new)
    tally.record(cls, not problems)
    assert not problems


def test_add_keys_with_the_redundant_unreachable(lab, tally):
    """The redundant cannot be reached (ssh to a closed port of this machine)."""
    def run():
        lab.host_vars[REDUNDANT] = {'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_port': 9,
                                    'ansible_ssh_common_args': '-o ConnectTimeout=3 -o BatchMode=yes'}
        try:
            return lab.playbook('add_keys.yml')
        finally:
            lab.host_vars[REDUNDANT] = {}
    failed_run_case(lab, tally, 'add_keys with the redundant unreachable', run)


def test_add_keys_with_the_backup_medium_missing(lab, tally):
    def run():
        away = lab.backup_dir + '.away'
        os.rename(lab.backup_dir, away)
        try:
            return lab.playbook('add_keys.yml')
        finally:
            os.rename(away, lab.backup_dir)
    failed_run_case(lab, tally, 'add_keys with the backup medium missing', run)


# --- issue 14: no EKM keeps serving stale keys after a kill ------------------------------------------------------

# The redundant's configuration task of add_keys.yml; its EKM is restarted by the handler after it. The kill lands as
# soon as the new configuration (naming the new keys) is on disk, before the handler can start: the rerun then finds
# nothing left to change on the redundant server.
REDUNDANT_CONFIG = r'^TASK \[tapecrypt\.ekm\.redundant : Set the EKM configuration keys from the seed\]'


def test_add_keys_killed_before_the_redundant_restart(lab, tally):
    """The rerun restarts the redundant's EKM although nothing is left to change there; verify.yml reports it before."""
    new = lab.new_range()
    killed = lab.playbook('add_keys.yml', kill_on=REDUNDANT_CONFIG,
                          kill_when=lambda: new <= invariant.served_aliases(lab.config(REDUNDANT)))
    problems = [] if killed.killed else ['the kill point was not reached: %r' % killed]
    problems += check(lab, 'after the kill')
    stale = playlab.served_key(lab, REDUNDANT, sorted(new)[0])
    if isinstance(stale, bytes):
        problems.append('the redundant already serves the new keys: the case tests nothing')
    verify = lab.playbook('verify.yml')
    if verify.rc == 0 or 'STALE' not in verify.out:
        problems.append('verify.yml does not report the EKM serving older files: rc %s' % verify.rc)
    problems += rerun(lab, 'add_keys.yml')
    problems += check(lab, 'after the rerun')
    problems += cartridge(lab, new)
    tally.record('add_keys kill before the redundant restart', not problems)
    assert not problems


def stage_keys_on_primary(lab):
    """New keys in the primary's keystore only (staged: named in no symmetricKeySet); their aliases and bytes."""
    new = lab.new_range()
    ranges = [{'prefix': r['prefix'], 'first': r['first'], 'count': r['count']} for r in lab.ranges]
    outcome, res = faults.module(keystore_module.main, dict(path=lab.keystore(PRIMARY), password=PASSWORD,
                                                            ranges=ranges, processes=1))
    assert outcome == 'ok' and res['changed'], res
    with open(lab.keystore(PRIMARY), 'rb') as f:
        keystore = _jceks.load(f.read(), PASSWORD)
    return {e.alias.lower(): _jceks.unseal(e, PASSWORD)[1] for e in keystore.entries if e.alias.lower() in new}


def served_and_backed_up(lab, keys):
    """The redundant's running EKM hands out each new key, and its newest verified backup set holds it."""
    problems = []
    for alias, key in sorted(keys.items()):
        got = playlab.served_key(lab, REDUNDANT, alias)
        if got != key:
            problems.append('the redundant EKM does not serve %s: %s' % (alias, got if isinstance(got, str) else 'other bytes'))
    set_path, held = invariant.newest_verified_set(lab.backup_host_dir(REDUNDANT), PASSWORD)
    missing = sorted(set(keys) - set(held))
    if missing:
        problems.append("the redundant's newest verified backup set %s lacks %s" % (set_path, ', '.join(missing)))
    return problems


def journal_left(lab):
    directory = os.path.dirname(lab.keystore(REDUNDANT))
    return [n for n in os.listdir(directory) if n.endswith('.journal')]


@pytest.mark.parametrize('point', ['rename:2'])
def test_sync_completed_from_its_journal(lab, tally, point):
    """A sync killed inside its install is completed from the journal by the next run, which restarts EKM and makes
    the backup the interrupted run owed."""
    keys = stage_keys_on_primary(lab)
    killed = lab.playbook('sync.yml', extra_env={'TAPECRYPT_FAULT_POINT': point})
    problems = [] if journal_left(lab) else ['no journal after the kill at %s: %r' % (point, killed)]
    problems += check(lab, 'after the kill')
    problems += rerun(lab, 'sync.yml')
    problems += check(lab, 'after the rerun')
    problems += served_and_backed_up(lab, keys)
    tally.record('sync completed from its journal (kill at %s)' % point.split(':')[0], not problems)
    assert not problems


@pytest.mark.parametrize('kill_on', [
    r'^TASK \[tapecrypt\.ekm\.server : Restart EKM that started before',
    r'^TASK \[tapecrypt\.ekm\.backup : Make a verified backup set on the host\]',
])
def test_sync_completed_from_its_journal_then_killed_again(lab, tally, kill_on):
    """The run that completes the install from the journal is killed at its restart or at its backup: the run
    after it still restarts EKM where needed and makes the backup."""
    keys = stage_keys_on_primary(lab)
    killed = lab.playbook('sync.yml', extra_env={'TAPECRYPT_FAULT_POINT': 'journal-written'})
    problems = [] if journal_left(lab) else ['no journal after the kill: %r' % killed]
    second = lab.playbook('sync.yml', kill_on=kill_on)
    if not second.killed:
        problems.append('the second kill point was not reached: %r' % second)
    problems += check(lab, 'after the kills')
    problems += rerun(lab, 'sync.yml')
    problems += check(lab, 'after the rerun')
    problems += served_and_backed_up(lab, keys)
    where = 'restart' if 'Restart' in kill_on else 'backup'
    tally.record('sync completed from its journal, killed again at its %s' % where, not problems)
    assert not problems
