# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The event source tapecrypt.ekm.ekm_files without ansible-rulebook: its debounce, its local and remote digests."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(HERE))),
                      'extensions', 'eda', 'plugins', 'event_source', 'ekm_files.py')


def _load():
    spec = importlib.util.spec_from_file_location('tapecrypt_ekm_files', PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ekm_files = _load()


class ListQueue:
    def __init__(self):
        self.events = []

    async def put(self, event):
        self.events.append(event)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def sha(data):
    return hashlib.sha256(data).hexdigest()


# ------------------------------------------------------------------------------------------------- debounce

def test_first_look_is_the_baseline_and_no_event():
    deb = ekm_files.Debouncer(settle=2, max_delay=30)
    assert deb.observe({'kg': 'a'}, 0) is None
    assert deb.observe({'kg': 'a'}, 5) is None


def test_change_is_emitted_once_it_has_settled():
    deb = ekm_files.Debouncer(settle=2, max_delay=30, baseline={'kg': 'a'})
    assert deb.observe({'kg': 'b'}, 10) is None
    assert deb.observe({'kg': 'b'}, 11) is None
    previous, now, waited = deb.observe({'kg': 'b'}, 12)
    assert (previous, now, waited) == ({'kg': 'a'}, {'kg': 'b'}, 2)
    assert deb.observe({'kg': 'b'}, 13) is None          # emitted once only


def test_burst_of_changes_gives_one_event_with_the_last_state():
    deb = ekm_files.Debouncer(settle=2, max_delay=30, baseline={'kg': 'a'})
    for t, value in enumerate('bcdef'):
        assert deb.observe({'kg': value}, 10 + t) is None
    assert deb.observe({'kg': 'f'}, 15) is None
    assert deb.observe({'kg': 'f'}, 16) == ({'kg': 'a'}, {'kg': 'f'}, 6)


def test_change_that_goes_back_before_settling_is_no_event():
    deb = ekm_files.Debouncer(settle=2, max_delay=30, baseline={'kg': 'a'})
    assert deb.observe({'kg': None}, 10) is None          # rotated away ...
    assert deb.observe({'kg': 'a'}, 11) is None           # ... and the same bytes are back
    assert deb.observe({'kg': 'a'}, 20) is None


def test_files_that_never_settle_are_emitted_after_max_delay():
    deb = ekm_files.Debouncer(settle=2, max_delay=5, baseline={'kg': 'a'})
    results = [deb.observe({'kg': 'v%d' % t}, 10 + t) for t in range(6)]
    assert results[:5] == [None] * 5
    assert results[5] == ({'kg': 'a'}, {'kg': 'v5'}, 5)


def test_event_names_every_file_its_digest_and_previous_digest():
    args = ekm_files.check_args({'files': {'keystore': '/k', 'keygroups': '/g', 'drivetable': '/d'},
                                 'primary': 'ekm1', 'site': 'dc1'})
    event = ekm_files.build_event(args, {'keystore': 'k1', 'keygroups': 'g1', 'drivetable': 'd1'},
                                  {'keystore': 'k1', 'keygroups': 'g2', 'drivetable': None}, 7, 2.5)
    body = event['ekm_files']
    assert body['type'] == 'changed' and body['primary'] == 'ekm1' and body['site'] == 'dc1'
    assert body['changed'] == ['drivetable', 'keygroups'] and body['missing'] == ['drivetable']
    assert body['complete'] is False
    assert body['files']['keygroups'] == {'path': '/g', 'digest': 'g2', 'previous': 'g1'}
    assert body['files']['keystore'] == {'path': '/k', 'digest': 'k1', 'previous': 'k1'}
    assert body['sequence'] == 7 and body['waited_seconds'] == 2.5


@pytest.mark.parametrize('bad', [{}, {'files': {}}, {'files': ['/a']}, {'files': {'k': ''}},
                                 {'files': {'k': '/a'}, 'interval': 0}, {'files': {'k': '/a'}, 'settle': -1}])
def test_bad_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        ekm_files.check_args(bad)


# ------------------------------------------------------------------------------------------------- local files

def _source(tmp_path, clock, **extra):
    files = {'keystore': str(tmp_path / 'EKMKeys.jck'), 'keygroups': str(tmp_path / 'KeyGroups.xml'),
             'drivetable': str(tmp_path / 'drivetable.dat')}
    args = dict({'files': files, 'settle': 2, 'interval': 1, 'primary': 'ekm1'}, **extra)
    queue = ListQueue()
    return ekm_files.Source(queue, args, clock=clock), queue, files


def _steps(source, clock, seconds):
    for _second in range(seconds):
        asyncio.run(source.step())
        clock.now += 1


def _write_atomically(path, data):
    tmp = path + '.tmp'
    with open(tmp, 'wb') as handle:
        handle.write(data)
    os.replace(tmp, path)


def test_local_no_event_while_nothing_changes(tmp_path):
    clock = FakeClock()
    source, queue, files = _source(tmp_path, clock)
    for path in files.values():
        _write_atomically(path, b'x')
    _steps(source, clock, 10)
    assert queue.events == []


def test_local_atomic_replacement_gives_one_event(tmp_path):
    clock = FakeClock()
    source, queue, files = _source(tmp_path, clock)
    for path in files.values():
        _write_atomically(path, b'v1')
    _steps(source, clock, 2)
    _write_atomically(files['keygroups'], b'v2')
    _write_atomically(files['drivetable'], b'v2')
    _steps(source, clock, 6)
    assert len(queue.events) == 1
    body = queue.events[0]['ekm_files']
    assert body['changed'] == ['drivetable', 'keygroups']
    assert body['files']['keygroups']['digest'] == sha(b'v2')
    assert body['files']['keygroups']['previous'] == sha(b'v1')


def test_local_rotation_is_followed(tmp_path):
    clock = FakeClock()
    source, queue, files = _source(tmp_path, clock)
    for path in files.values():
        _write_atomically(path, b'v1')
    _steps(source, clock, 2)
    os.rename(files['keygroups'], files['keygroups'] + '.1')     # rotated away: missing for a moment
    asyncio.run(source.step())
    clock.now += 1
    _write_atomically(files['keygroups'], b'v3')                 # a new file under the old name
    _steps(source, clock, 5)
    assert len(queue.events) == 1
    assert queue.events[0]['ekm_files']['files']['keygroups']['digest'] == sha(b'v3')
    assert queue.events[0]['ekm_files']['missing'] == []
    assert queue.events[0]['ekm_files']['complete'] is True


def test_same_size_and_time_edit_in_place_is_seen(tmp_path):
    """The stat cache must not hide a rewrite: the inode's ctime changes with every write."""
    clock = FakeClock()
    source, queue, files = _source(tmp_path, clock)
    for path in files.values():
        _write_atomically(path, b'aaaa')
    _steps(source, clock, 2)
    st = os.stat(files['keystore'])
    with open(files['keystore'], 'r+b') as handle:
        handle.write(b'bbbb')
    os.utime(files['keystore'], ns=(st.st_atime_ns, st.st_mtime_ns))
    _steps(source, clock, 5)
    assert [e['ekm_files']['changed'] for e in queue.events] == [['keystore']]


def test_state_file_gives_the_change_made_while_stopped(tmp_path):
    clock = FakeClock()
    state = str(tmp_path / 'state.json')
    source, queue, files = _source(tmp_path, clock, state_file=state)
    for path in files.values():
        _write_atomically(path, b'v1')
    _steps(source, clock, 2)
    _write_atomically(files['keystore'], b'v2')
    _steps(source, clock, 5)
    assert len(queue.events) == 1
    assert json.load(open(state, encoding='utf-8'))['files']['keystore'] == sha(b'v2')
    # Stopped; the files change; started again: one event for what happened meanwhile, none after it.
    _write_atomically(files['keygroups'], b'v2')
    source2, queue2, _files = _source(tmp_path, clock, state_file=state)
    _steps(source2, clock, 8)
    assert [e['ekm_files']['changed'] for e in queue2.events] == [['keygroups']]


def test_emit_initial(tmp_path):
    clock = FakeClock()
    source, queue, files = _source(tmp_path, clock, emit_initial=True)
    for path in files.values():
        _write_atomically(path, b'v1')
    _steps(source, clock, 5)
    assert len(queue.events) == 1 and queue.events[0]['ekm_files']['changed'] == sorted(files)


def test_unreadable_look_gives_one_unreachable_event(tmp_path):
    clock = FakeClock()
    calls = []

    async def failing():
        calls.append(1)
        raise ekm_files.DigestError('ssh exited with 255: Connection refused')
    failing.close = lambda: None
    queue = ListQueue()
    source = ekm_files.Source(queue, {'files': {'k': '/k'}, 'host': 'root@ekm1', 'unreachable_after': 3},
                              reader=failing, clock=clock)
    _steps(source, clock, 10)
    assert len(calls) == 10
    assert [e['ekm_files']['type'] for e in queue.events] == ['unreachable']
    assert 'Connection refused' in queue.events[0]['ekm_files']['reason']


# ------------------------------------------------------------------------------------------------- remote files

def test_remote_script_prints_one_digest_or_dash_per_file(tmp_path):
    """The command the SSH call runs, run here with sh: paths with blanks and quotes, a missing file, a directory."""
    good = tmp_path / "it's a key store"
    good.write_bytes(b'key bytes')
    names = ['a', 'b', 'c']
    paths = [str(good), str(tmp_path / 'missing'), str(tmp_path)]
    out = subprocess.run(['sh', '-c', ekm_files.remote_script(paths)], stdout=subprocess.PIPE, check=True,
                         text=True).stdout
    assert ekm_files.parse_remote(out, names) == {'a': sha(b'key bytes'), 'b': None, 'c': None}


@pytest.mark.parametrize('answer', ['', 'abc\n-\n', 'Welcome to the host\n' + 'f' * 64 + '\n'])
def test_remote_answer_that_is_not_digests_is_an_error(answer):
    with pytest.raises(ekm_files.DigestError):
        ekm_files.parse_remote(answer, ['a', 'b'])


def test_remote_reader_runs_one_ssh_call_per_look(tmp_path, monkeypatch):
    """A fake ssh on PATH that runs the remote command locally and counts its calls."""
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    log = tmp_path / 'calls'
    fake = bindir / 'ssh'
    fake.write_text('#!/bin/sh\necho "$@" >> %s\ncase " $* " in *" -O exit "*) exit 0;; esac\n'
                    'for a; do shift; [ "$a" = -- ] && break; done\nexec sh -c "$1"\n' % log)
    fake.chmod(0o755)
    monkeypatch.setenv('PATH', str(bindir) + os.pathsep + os.environ['PATH'])
    (tmp_path / 'kg').write_bytes(b'groups')
    reader = ekm_files.RemoteDigests('root@ekm1', {'keygroups': str(tmp_path / 'kg'), 'keystore': str(tmp_path / 'ks')},
                                     ['-p', '2222'])
    try:
        assert asyncio.run(reader()) == {'keygroups': sha(b'groups'), 'keystore': None}
        assert asyncio.run(reader()) == {'keygroups': sha(b'groups'), 'keystore': None}
    finally:
        reader.close()
    calls = log.read_text().splitlines()
    assert len(calls) == 3                                  # two looks, then the master connection's exit
    assert 'BatchMode=yes' in calls[0] and '-p 2222 root@ekm1 --' in calls[0]
    assert '-O exit root@ekm1' in calls[2]
