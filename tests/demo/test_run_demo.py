# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The demo's clean start: servers of an earlier run are stopped through their ekmctl and demo/ is removed.

Real listening processes stand in for the EKM servers; each fake host's ``bin/ekmctl stop`` ends its
process as the server role's script does (SIGTERM to the pid in the pid file). The whole demo runs
by hand (``make demo``), since it takes minutes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run_demo  # noqa: E402  pylint: disable=wrong-import-position

LISTENER = ('import socket, sys, time\n'
            's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(5)\n'
            'open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1])); __import__("os").rename(sys.argv[1] + ".tmp", sys.argv[1])\n'
            'time.sleep(600)\n')
EKMCTL = '''#!/bin/sh
[ "$1" = stop ] || exit 2
pidfile="$(dirname "$0")/../ekm.pid"
[ -f "$pidfile" ] || { echo "EKM is not running"; exit 0; }
%s
pid=$(cat "$pidfile")
kill -TERM "$pid" 2> /dev/null
while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done
rm -f "$pidfile"
echo "EKM stopped"
'''


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def listeners(tmp_path):
    """start() -> (pid, port) of a listening process that is not this test's child (init reaps it)."""
    started = []

    def start():
        portfile = tmp_path / ('port-%d' % len(started))
        out = subprocess.run(['sh', '-c', '"$0" -c "$1" "$2" > /dev/null 2>&1 & echo $!', sys.executable, LISTENER, str(portfile)],
                             stdout=subprocess.PIPE, text=True, check=True).stdout
        pid = int(out.strip())
        started.append(pid)
        deadline = time.monotonic() + 30
        while not portfile.exists():
            assert time.monotonic() < deadline, 'the listener did not start'
            time.sleep(0.05)
        return pid, int(portfile.read_text())

    yield start
    for pid in started:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def fake_host(demo, host, pid, stop_fails=False):
    home = demo / host
    (home / 'bin').mkdir(parents=True)
    (home / 'ekm.pid').write_text('%d\n' % pid)
    (home / 'KeyGroups.xml').write_text('<changed locally since the last sync/>')
    ctl = home / 'bin' / 'ekmctl'
    ctl.write_text(EKMCTL % ('echo "ekmctl: EKM (pid $(cat "$pidfile")) did not stop"; exit 1' if stop_fails else ''))
    ctl.chmod(0o755)


def wait_gone(pid):
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_clean_start_stops_the_old_servers_and_removes_the_old_demo(tmp_path, listeners):
    demo = tmp_path / 'demo'
    (pid1, port1), (pid2, port2) = listeners(), listeners()
    fake_host(demo, 'ekm-primary', pid1)
    fake_host(demo, 'ekm-redundant', pid2)
    (demo / 'cartridges').mkdir()
    (demo / 'cartridges' / 'r-00.cart').write_bytes(b'written through the redundant')
    assert run_demo.port_in_use(port1) and run_demo.port_in_use(port2)
    run_demo.clean_start(str(demo), {'ekm-primary': port1, 'ekm-redundant': port2})
    assert wait_gone(pid1) and wait_gone(pid2)
    assert not run_demo.port_in_use(port1) and not run_demo.port_in_use(port2)
    assert demo.is_dir() and os.listdir(demo) == []


def test_clean_start_without_an_earlier_run(tmp_path):
    demo = tmp_path / 'demo'
    run_demo.clean_start(str(demo), {'ekm-primary': 1})
    assert os.listdir(demo) == []
    # A second time: the empty directory of the first is simply replaced.
    run_demo.clean_start(str(demo), {'ekm-primary': 1})


def test_a_port_held_by_another_process_stops_the_run_and_that_process_lives(tmp_path, listeners):
    demo = tmp_path / 'demo'
    pid, port = listeners()
    with pytest.raises(SystemExit, match=r'port\(s\) %d \(ekm-primary\) .* not one of the demo' % port):
        run_demo.clean_start(str(demo), {'ekm-primary': port})
    assert alive(pid) and run_demo.port_in_use(port)


def test_a_server_that_does_not_stop_keeps_the_old_demo(tmp_path, listeners):
    demo = tmp_path / 'demo'
    pid, port = listeners()
    fake_host(demo, 'ekm-primary', pid, stop_fails=True)
    with pytest.raises(SystemExit, match='did not stop.*ekm-primary'):
        run_demo.clean_start(str(demo), {'ekm-primary': port})
    # Its ekmctl and files stay, so that it can still be stopped; nothing was killed behind its back.
    assert (demo / 'ekm-primary' / 'bin' / 'ekmctl').exists() and alive(pid)


def test_stop_servers_reports_each_server_that_did_not_stop(tmp_path, listeners):
    demo = tmp_path / 'demo'
    (pid1, _port1), (pid2, _port2) = listeners(), listeners()
    fake_host(demo, 'ekm-primary', pid1)
    fake_host(demo, 'ekm-redundant', pid2, stop_fails=True)
    failed = run_demo.stop_servers(str(demo), ('ekm-primary', 'ekm-redundant'))
    assert len(failed) == 1 and failed[0].startswith('ekm-redundant (ekmctl: EKM (pid %d) did not stop' % pid2)
    assert wait_gone(pid1) and alive(pid2)
