# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Concurrent writers (also through symlinks), byte flips and truncations, special files."""
from __future__ import annotations

import datetime
import multiprocessing
import os
import shutil
import socket
import stat

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils import _backup
from ansible_collections.tapecrypt.ekm.plugins.modules import backup as backup_module
from ansible_collections.tapecrypt.ekm.plugins.modules import config as config_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore as keystore_module
from ansible_collections.tapecrypt.ekm.plugins.modules import keystore_info as info_module
from ansible_collections.tapecrypt.ekm.plugins.modules import restore as restore_module
from ansible_collections.tapecrypt.ekm.tests.fault import faults
from ansible_collections.tapecrypt.ekm.tests.fault.faults import FAST, PW, RNG
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.modules.module_runner import ModuleExit

ROUNDS = 3


def ks_args(path, first, count):
    return dict(path=str(path), password=PW, iteration_count=FAST, processes=1,
                ranges=[{'prefix': 'DCA', 'first': first, 'count': count}])


def _writer(path, first):
    try:
        faults.call_module(keystore_module.main, ks_args(path, first, 800))
    except ModuleExit as done:
        return ('failed' if done.failed else 'ok'), done.result.get('created_count')
    return 'error', None


def test_concurrent_writers_also_through_symlinks(tmp_path, tally):
    real, other = tmp_path / 'real', tmp_path / 'other'
    real.mkdir()
    other.mkdir()
    path = real / 'EKMKeys.jck'
    (other / 'EKMKeys.jck').symlink_to(path)
    (other / 'link-to-dir').symlink_to(real, target_is_directory=True)
    reported = set()
    for n in range(ROUNDS):
        paths = [path, other / 'EKMKeys.jck', other / 'link-to-dir' / 'EKMKeys.jck']
        firsts = [0x10000 * (n * 3 + i + 1) for i in range(3)]
        with multiprocessing.get_context('fork').Pool(3) as pool:
            results = [pool.apply_async(_writer, (str(p), f)) for p, f in zip(paths, firsts)]
            outcomes = [r.get(timeout=300) for r in results]
        for (outcome, count), first in zip(outcomes, firsts):
            assert outcome == 'ok' and count == 800
            reported |= {'dca%018x' % (first + i) for i in range(800)}
        held = faults.keystore_aliases(str(path))
        survived = held is not None and reported <= held and os.path.islink(other / 'EKMKeys.jck')
        tally.record('concurrent writers (3, two through links)', survived)
        assert survived, sorted(reported - (held or set()))[:5]


def _flip(data, offset, bit):
    out = bytearray(data)
    out[offset] ^= 1 << bit
    return bytes(out)


def test_byte_flips_and_truncations_of_a_keystore_are_detected(tmp_path, tally):
    path = tmp_path / 'EKMKeys.jck'
    assert faults.module(keystore_module.main, ks_args(path, 1, 20))[0] == 'ok'
    good = path.read_bytes()
    damages = [('flip', _flip(good, RNG.randrange(len(good)), RNG.randrange(8))) for dummy in range(20)]
    damages += [('truncation', good[:RNG.randrange(len(good))]) for dummy in range(10)]
    for kind, data in damages:
        path.write_bytes(data)
        results = [faults.module(keystore_module.main, ks_args(path, 1, 21)),
                   faults.module(info_module.main, dict(path=str(path), password=PW))]
        survived = all(outcome == 'failed' for outcome, dummy in results) and path.read_bytes() == data
        tally.record('keystore %s' % kind, survived)
        assert survived, (kind, results)


def test_byte_flips_and_truncations_of_a_backup_set_are_never_installed(tmp_path, tally):
    home = tmp_path / 'ekm'
    home.mkdir()
    dest = tmp_path / 'backup'
    dest.mkdir()
    paths = {'keystore': str(home / 'EKMKeys.jck'), 'config': str(home / 'KeyManagerConfig.properties'),
             'keygroups': str(home / 'KeyGroups.xml'), 'drivetable': str(home / 'filedrive.table')}
    assert faults.module(keystore_module.main, ks_args(paths['keystore'], 1, 20))[0] == 'ok'
    for kind in ('config', 'keygroups', 'drivetable'):
        with open(paths[kind], 'w', encoding='utf-8') as f:
            f.write('%s of the set\n' % kind)
    when = datetime.datetime(2026, 1, 31, 12, 0, 0, tzinfo=datetime.timezone.utc)
    good_set = _backup.backup(paths, PW, str(dest), 'dc1', 'ekm1', now=lambda: when)['set_path']
    for kind in ('config', 'keygroups', 'drivetable'):
        with open(paths[kind], 'w', encoding='utf-8') as f:
            f.write('%s now\n' % kind)
    current = {k: open(p, 'rb').read() for k, p in paths.items()}
    args = {'%s_path' % k: p for k, p in paths.items()}
    for n in range(16):
        damaged = str(tmp_path / ('damaged%d' % n))
        shutil.copytree(good_set, damaged)
        name = sorted(os.listdir(damaged))[n % 5]
        victim = os.path.join(damaged, name)
        data = open(victim, 'rb').read()
        kind = 'flip' if n < 10 else 'truncation'
        data = _flip(data, RNG.randrange(len(data)), RNG.randrange(8)) if kind == 'flip' else data[:RNG.randrange(len(data))]
        with open(victim, 'wb') as f:
            f.write(data)
        outcome, res = faults.module(restore_module.main, dict(args, source=damaged, site='dc1', host='ekm1', password=PW))
        survived = outcome == 'failed' and {k: open(p, 'rb').read() for k, p in paths.items()} == current
        tally.record('backup set %s' % kind, survived)
        assert survived, (name, outcome, res)


def _special(tmp_path, kind):
    path = tmp_path / kind / 'EKMKeys.jck'
    path.parent.mkdir()
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'device-link':
        path.symlink_to('/dev/zero')
    elif kind == 'directory':
        path.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    return path


@pytest.mark.parametrize('kind', ['fifo', 'device-link', 'directory', 'socket'])
def test_special_files_are_refused(tmp_path, tally, kind):
    path = _special(tmp_path, kind)
    mode = os.lstat(path).st_mode
    cases = {
        'keystore': (keystore_module.main, ks_args(path, 1, 2)),
        'keystore_info': (info_module.main, dict(path=str(path), password=PW)),
        'config': (config_module.main, dict(path=str(path), settings={'a': 'b'})),
        'backup': (backup_module.main, dict(keystore_path=str(path), password=PW, dest=str(tmp_path / 'dest'),
                                            site='dc1', host='ekm1')),
    }
    for name, (main, args) in cases.items():
        outcome, res = faults.module(main, args, timeout=20)
        survived = outcome == 'failed' and os.lstat(path).st_mode == mode
        tally.record('special file: %s' % kind, survived)
        assert survived, (name, outcome, res)
    assert stat.S_IFMT(os.lstat(path).st_mode) == stat.S_IFMT(mode)
