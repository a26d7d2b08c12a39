# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/promote.yml: a redundant server becomes the primary after the primary was lost for good.

Servers are "hosts" on this machine with ``ansible_connection: local`` and their own ``ekm_home`` in a temporary
directory, like tests/playbooks/test_preflight.py, with the stand-in EKM running; backups go to the controller
(``ekm_backup_where: controller``), where the primary's sets survive it. site.yml provisions ekm1 (primary) and ekm2;
add_keys.yml adds PRO005-008 with ekm2 out of service, so only ekm1 and its verified set hold them; then ekm1 is lost
(its EKM stopped, its files removed, its address answering no SSH). promote.yml must refuse a damaged newest set
(naming the keys only that set recorded) and a conflict (naming the alias), changing nothing; then add PRO005-008 to
ekm2 from the set, back ekm2 up and print the inventory change; a second run changes nothing; with the inventory
changed, site.yml builds a new redundant server (ekm3) from ekm2 and verify.yml finds the site whole.
The tests run in file order on one site: the refusals before the promotion.
"""
from __future__ import annotations

import contextlib
import getpass
import grp
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(os.path.abspath(sys.executable))
COLLECTIONS = os.path.join(ROOT, '.build')
PASSWORD = 'promote-pass-7'
NOTHING = 'Nothing was changed.'
NEW = ['pro%018x' % n for n in range(5, 9)]


def free_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def keystore_module():
    sys.path.insert(0, COLLECTIONS)
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks  # pylint: disable=import-outside-toplevel
    return _jceks


class Site:
    def __init__(self, tmp_path, archive):
        self.dir = tmp_path
        self.backup = tmp_path / 'controller-backup'
        self.backup.mkdir()
        ports = [free_port() for dummy in range(4)]
        self.common = {
            'ansible_connection': 'local',
            'ansible_python_interpreter': sys.executable,
            'ekm_backup_where': 'controller',
            'ekm_backup_controller_dest': str(self.backup),
            'ekm_user': getpass.getuser(),
            'ekm_group': grp.getgrgid(os.getgid()).gr_name,
            'ekm_server_manage_user': False,
            'ekm_server_manage_packages': False,
            'ekm_service_manager': 'script',
            'ekm_server_archive': archive[0],
            'ekm_server_archive_sha256': archive[1],
            'ekm_server_main_class': 'tapecrypt.standin.EkmStandin',
            'ekm_primary_keystore_iteration_count': 1000,
            'ekm_seed': {'site': 'prom', 'keystore_password': PASSWORD, 'tcp_port': ports[0], 'ssl_port': ports[1],
                         'key_ranges': [{'prefix': 'PRO', 'first': 1, 'count': 4}]},
        }
        self.hosts = {name: self.new_host(name) for name in ('ekm1', 'ekm2')}
        # ekm1 listens on the seed's ports.
        self.hosts['ekm1'].pop('ekm_host_settings')
        self.primaries, self.redundants = ['ekm1'], ['ekm2']

    def new_host(self, name):
        return {'ekm_home': str(self.dir / name),
                'ekm_host_settings': {'TransportListener.tcp.port': free_port(),
                                      'TransportListener.ssl.port': free_port()}}

    def run(self, playbook, *args):
        def group(names):
            return {'hosts': {h: self.hosts[h] for h in names}}
        inventory = self.dir / 'inventory.yml'
        inventory.write_text(json.dumps({'all': {'vars': self.common, 'children': {'ekm': {'children': {
            'ekm_primary': group(self.primaries), 'ekm_redundant': group(self.redundants)}}}}}))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_NOCOLOR='1',
                   ANSIBLE_RETRY_FILES_ENABLED='0', ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_SSH_RETRIES='0',
                   ANSIBLE_TIMEOUT='5', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
        proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inventory),
                               os.path.join(ROOT, 'playbooks', playbook)] + list(args),
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
                              cwd=str(self.dir))
        return proc.returncode, proc.stdout

    def stop(self, name):
        ctl = os.path.join(self.hosts[name]['ekm_home'], 'bin', 'ekmctl')
        if os.path.exists(ctl):
            subprocess.run([ctl, 'stop'], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def keystore(self, name):
        return os.path.join(self.hosts[name]['ekm_home'], 'keystore', 'EKMKeys.jck')

    def keys(self, name):
        _jceks = keystore_module()
        with open(self.keystore(name), 'rb') as f:
            ks = _jceks.load(f.read(), PASSWORD)
        return {e.alias: _jceks.unseal(e, PASSWORD)[1] for e in ks.entries}

    def sets(self, name):
        return sorted(p.name for p in (self.backup / 'prom' / name).iterdir() if not p.name.startswith('.'))

    def watched(self):
        """Every file of the surviving servers and the controller's sets, without what running stand-ins write."""
        found = {}
        for base, dummy, files in os.walk(str(self.dir)):
            for name in files:
                path = os.path.join(base, name)
                if any(part in path for part in ('/logs', '/run/', '/audit', '/metadata/', 'inventory.yml')):
                    continue
                with open(path, 'rb') as f:
                    found[path] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mode)
        return found


def recap(out, host):
    match = re.search(r'^%s\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)' % re.escape(host), out, re.M)
    assert match, out[-3000:]
    return tuple(int(n) for n in match.groups())


@pytest.fixture(scope='module')
def site(tmp_path_factory, archive):
    made = Site(tmp_path_factory.mktemp('promote'), archive)
    try:
        rc, out = made.run('site.yml')
        assert rc == 0, out[-4000:]
        # New keys while ekm2 is out of service: ekm1 and its verified set hold them, ekm2 does not.
        rc, out = made.run('add_keys.yml', '-e', json.dumps({
            'ekm_out_of_service': ['ekm2'], 'ekm_add_key_ranges': [{'prefix': 'PRO', 'first': 5, 'count': 4}]}))
        assert rc == 0, out[-4000:]
        assert sorted(made.keys('ekm1')) == sorted(made.keys('ekm2')) + NEW
        made.primary_keys = made.keys('ekm1')
        # ekm1 is lost for good: EKM stopped, files gone, the host answers no SSH.
        made.stop('ekm1')
        shutil.rmtree(made.hosts['ekm1']['ekm_home'])
        made.hosts['ekm1'].update({'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_port': free_port(),
                                   'ansible_user': 'nobody'})
        yield made
    finally:
        for name in list(made.hosts):
            made.stop(name)


def assert_refused(site, before, rc, out, *needles):
    assert rc != 0, out[-4000:]
    for needle in needles:
        assert needle in out, (needle, out[-4000:])
    assert NOTHING in out and PASSWORD not in out
    assert site.watched() == before


def test_a_damaged_newest_set_is_refused_naming_the_keys_only_it_recorded(site):
    newest = site.backup / 'prom' / 'ekm1' / site.sets('ekm1')[-1] / 'EKMKeys.jck'
    data = newest.read_bytes()
    newest.write_bytes(data[:-30] + bytes(b ^ 0xFF for b in data[-30:-27]) + data[-27:])
    try:
        before = site.watched()
        rc, out = site.run('promote.yml', '-e', 'ekm_promote_host=ekm2')
        assert_refused(site, before, rc, out, 'The keys of prom/ekm1 cannot be added to ekm2',
                       'cannot be used: EKMKeys.jck has sha256', "Its manifest records 4 key(s) that",
                       'lacks: PRO005-008', 'Where its backup sets were looked for:',
                       '- the controller: %s/prom/ekm1: ' % site.backup)
    finally:
        newest.write_bytes(data)


def test_a_different_key_under_an_alias_is_refused_naming_it(site):
    _jceks = keystore_module()
    path = site.keystore('ekm2')
    with open(path, 'rb') as f:
        original = f.read()
    ks = _jceks.load(original, PASSWORD)
    ks.entries = [_jceks.seal_secret_key(e.alias, b'\x42' * 32, PASSWORD, iteration_count=1000)
                  if e.alias == 'pro000000000000000002' else e for e in ks.entries]
    with open(path, 'wb') as f:
        f.write(_jceks.dump(ks, PASSWORD))
    try:
        before = site.watched()
        rc, out = site.run('promote.yml', '-e', 'ekm_promote_host=ekm2')
        assert_refused(site, before, rc, out, 'hold different keys under 1 alias(es): pro000000000000000002',
                       'Adding the set\'s keys would fork them')
    finally:
        with open(path, 'wb') as f:
            f.write(original)


def test_a_request_without_a_redundant_server_is_refused(site):
    before = site.watched()
    rc, out = site.run('promote.yml', '-e', 'ekm_promote_host=ekm1')
    assert_refused(site, before, rc, out, 'Name the redundant server to promote with -e ekm_promote_host=',
                   '("ekm1" is not one of them)')
    assert 'PLAY [Preflight: check the inventory' not in out


def test_promote_adds_the_missing_keys_then_site_builds_a_new_redundant_server(site):
    sets_before = site.sets('ekm2')
    rc, out = site.run('promote.yml', '-e', 'ekm_promote_host=ekm2', '--check', '--diff')
    assert rc == 0 and 'PRO005-008' in out, out[-4000:]
    assert sorted(site.keys('ekm2')) == sorted(site.primary_keys)[:4]

    rc, out = site.run('promote.yml', '-e', 'ekm_promote_host=ekm2')
    assert rc == 0, out[-4000:]
    assert 'Added to ekm2: PRO005-008' in out and 'PRO005-008 missing here' in out, out[-4000:]
    assert 'move ekm2 from ekm_redundant to ekm_primary, and remove ekm1' in out
    assert recap(out, 'ekm1') == (0, 0, 0)
    assert site.keys('ekm2') == site.primary_keys          # the same keys, none lost, none replaced
    assert len(site.sets('ekm2')) == len(sets_before) + 1  # a verified set of ekm2 holds them
    manifest = json.loads((site.backup / 'prom' / 'ekm2' / site.sets('ekm2')[-1] / 'MANIFEST.json').read_text())
    assert manifest['keystore']['ranges'] == ['PRO001-008']

    rc, out = site.run('promote.yml', '-e', 'ekm_promote_host=ekm2')
    assert rc == 0 and recap(out, 'ekm2')[0] == 0 and recap(out, 'localhost')[0] == 0, out[-4000:]
    assert 'every key of it is here already' in out

    # The inventory change the run printed; ekm3 is the new redundant server, built by site.yml from ekm2.
    site.hosts['ekm3'] = site.new_host('ekm3')
    site.hosts['ekm2'].pop('ekm_host_settings')
    site.hosts.pop('ekm1')
    site.primaries, site.redundants = ['ekm2'], ['ekm3']
    site.stop('ekm2')  # it listened on its own ports; as the primary it listens on the seed's
    rc, out = site.run('site.yml')
    assert rc == 0, out[-4000:]
    assert site.keys('ekm3') == site.keys('ekm2') == site.primary_keys
    rc, out = site.run('verify.yml')
    assert rc == 0, out[-4000:]
    rc, out = site.run('site.yml')
    assert rc == 0 and recap(out, 'ekm2')[0] == 0 and recap(out, 'ekm3')[0] == 0, out[-4000:]
