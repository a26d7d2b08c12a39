# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""``make bench``: performance figures, measured in one run on this machine. Never a pass/fail test.

1. ``tapecrypt.ekm.keystore`` creating 1000 keys at 200000 iterations, run by Ansible.
2. ``keytool -genseckey``, one JVM per key, 20 keys (how keys are made without this collection).
3. Their ratio per key.
4. ``tapecrypt.ekm.keystore_info`` (no fingerprints) on a keystore of 10000 entries: in-process and through Ansible.
5. On two SSH lab hosts (tests/lab, needs root) with 10000 keys: a no-change ``sync.yml`` and ``verify.yml``, and a
   ``sync.yml`` after 100 keys were added on the primary (which files travelled).
6. ``backend: keytool`` creating 1000 keys: the batched path (PKCS#12 files, one ``keytool -importkeystore`` JVM per
   core) through Ansible, against the one-JVM-per-key fallback measured on fewer keys and extrapolated per key.

7. The IBM JRE's dialect at its default iteration count (20): keys per second written by ``tapecrypt.ekm.keystore``
   through Ansible and sealed in-process, and keys per second fingerprinted by ``keystore_info``.
8. The key-usage ledger with 100000 records over 10000 keys: appending them, loading and querying it, and
   ``verify_report`` deciding a report with cartridges per key (in-process). Section 5 runs ``verify.yml`` with such
   a ledger too.

9. Recovery point (needs root, Java 17 and the ansible-rulebook venv, built on first use): seconds from a cartridge
   written through the primary until the redundant's keystore, KeyGroups.xml and drive table equal the primary's, on
   two SSH lab hosts; median and maximum of 10 with the ``tapecrypt.ekm.ekm_sync`` rulebook running, and of 10 with
   ``sync.yml`` started every 30 s (the shortest interval the schedule role documents), cartridges written at random
   moments.

``--sections`` runs only some of them (module, keytool, info, lab, keytool-backend, ibm, ledger, recovery).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, '.build')
BIN = os.path.dirname(os.path.abspath(sys.executable))
PW = 'bench-keystore-pass'
SECTIONS = ('module', 'keytool', 'info', 'lab', 'keytool-backend', 'ibm', 'ledger', 'recovery')
LEDGER_RECORDS = 100000


def ensure_collection_link():
    link = os.path.join(BUILD, 'ansible_collections', 'tapecrypt', 'ekm')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    if BUILD not in sys.path:
        sys.path.insert(0, BUILD)


def ansible_module(module, args):
    """Run one module through ``ansible localhost -m``; return (seconds, result)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=BUILD, ANSIBLE_LOAD_CALLBACK_PLUGINS='1', ANSIBLE_STDOUT_CALLBACK='ansible.builtin.oneline',
               ANSIBLE_LOCALHOST_WARNING='0', ANSIBLE_INVENTORY_UNPARSED_WARNING='0', ANSIBLE_NOCOLOR='1')
    cmd = [os.path.join(BIN, 'ansible'), 'localhost', '-c', 'local', '-e', 'ansible_python_interpreter=' + sys.executable,
           '-m', module, '-a', json.dumps(args)]
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    secs = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit('%s failed: %s %s' % (module, proc.stdout[-2000:], proc.stderr[-2000:]))
    # oneline: "localhost | CHANGED => {...}" on one line
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('localhost |')][0]
    result = json.loads(line.split('=>', 1)[1])
    return secs, result


def bench_module(workdir, n):
    path = os.path.join(workdir, 'module.jck')
    secs, res = ansible_module('tapecrypt.ekm.keystore', {'path': path, 'password': PW,
                                                          'ranges': [{'prefix': 'BNA', 'first': 1, 'count': n}]})
    assert res['created_count'] == n, res
    again, res2 = ansible_module('tapecrypt.ekm.keystore', {'path': path, 'password': PW,
                                                            'ranges': [{'prefix': 'BNA', 'first': 1, 'count': n}]})
    return secs, again, res2['changed']


def bench_keytool(workdir, n):
    path = os.path.join(workdir, 'keytool.jck')
    env = dict(os.environ, KSP=PW, LANG='C')
    start = time.monotonic()
    for i in range(1, n + 1):
        subprocess.run(['keytool', '-genseckey', '-alias', 'bnk%018x' % i, '-keyalg', 'AES', '-keysize', '256',
                        '-storetype', 'JCEKS', '-keystore', path, '-storepass:env', 'KSP', '-keypass:env', 'KSP'],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - start


def run_keytool(argv, env):
    """The keytool runner of _keystore.Keytool outside a module: exit status and merged output."""
    proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          check=False)
    return proc.returncode, proc.stdout.decode('utf-8', 'replace')


def bench_keytool_backend(workdir, n, per_key_n):
    """The keytool backend: batched through Ansible on n keys, one JVM per key (its fallback) on per_key_n keys."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _keystore  # pylint: disable=import-outside-toplevel
    path = os.path.join(workdir, 'keytool-backend.jck')
    cpu = children_cpu()
    secs, res = ansible_module('tapecrypt.ekm.keystore', {'path': path, 'password': PW, 'backend': 'keytool',
                                                          'ranges': [{'prefix': 'BKB', 'first': 1, 'count': n}]})
    batch_cpu = children_cpu() - cpu
    assert res['created_count'] == n and res['keytool']['method'] == 'importkeystore', res
    keytool = _keystore.Keytool(run=run_keytool)
    aliases = ['bkc%018x' % i for i in range(1, per_key_n + 1)]
    start, cpu = time.monotonic(), children_cpu()
    # The fallback's own code: one keytool -genseckey JVM per key on a private copy of the keystore.
    _keystore.add_keytool(keytool, os.path.join(workdir, 'per-key.jck'), None, aliases, PW, PW)
    per_key = (time.monotonic() - start) / per_key_n
    per_key_cpu = (children_cpu() - cpu) / per_key_n
    print('keytool backend, batched, %d keys through Ansible: %.1f s total, %.4f s/key (%d keytool JVMs at once); '
          'CPU of all processes %.1f s' % (n, secs, secs / n, res['keytool']['runs'], batch_cpu))
    print('keytool backend, one JVM per key (the fallback), measured on %d keys: %.4f s/key (CPU %.4f s/key); '
          'extrapolated to %d keys: %.0f s' % (per_key_n, per_key, per_key_cpu, n, per_key * n))
    print('ratio one-JVM-per-key/batched for %d keys: %.1fx wall clock (goal: at least 10x), %.1fx CPU time; load '
          'average now %.1f on %d CPU(s) (other users slow the two-core batch more than one JVM at a time)'
          % (n, per_key * n / secs, per_key_cpu * n / batch_cpu, os.getloadavg()[0], os.cpu_count()))


def children_cpu():
    """User and system CPU seconds of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def make_big_keystore(path, n):
    """A keystore of n AES-256 entries, sealed with a low iteration count: listing cost does not depend on it."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks  # pylint: disable=import-outside-toplevel
    ks = _jceks.new_keystore()
    items = [('bnb%018x' % i, os.urandom(32)) for i in range(1, n + 1)]
    for entry in _jceks.seal_secret_keys(items, PW, iteration_count=1000):
        ks.add(entry)
    with open(path, 'wb') as f:
        f.write(_jceks.dump(ks, PW))


def bench_info(workdir, n):
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _keystore  # pylint: disable=import-outside-toplevel
    path = os.path.join(workdir, 'big.jck')
    make_big_keystore(path, n)
    start = time.monotonic()
    ks, data = _keystore.read(path, PW)
    info = _keystore.inventory(ks, path, data)
    inproc = time.monotonic() - start
    assert info['count'] == n
    secs, res = ansible_module('tapecrypt.ekm.keystore_info', {'path': path, 'password': PW})
    assert res['keystore']['count'] == n
    summary, res = ansible_module('tapecrypt.ekm.keystore_info', {'path': path, 'password': PW, 'entries': False})
    assert res['keystore']['count'] == n
    # The same Ansible round trip on a 1-entry keystore: what is Ansible's own overhead.
    small = os.path.join(workdir, 'small.jck')
    make_big_keystore(small, 1)
    base, _res = ansible_module('tapecrypt.ekm.keystore_info', {'path': small, 'password': PW})
    return inproc, secs, summary, base


def bench_ibm(workdir, n):
    """Keys per second in the IBM dialect at IBM keytool's default iteration count."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _jceks  # pylint: disable=import-outside-toplevel
    path = os.path.join(workdir, 'ibm.jck')
    secs, res = ansible_module('tapecrypt.ekm.keystore', {'path': path, 'password': PW, 'dialect': 'ibm',
                                                          'ranges': [{'prefix': 'BNI', 'first': 1, 'count': n}]})
    assert res['created_count'] == n and res['dialect'] == 'ibm' and res['iteration_count'] == 20, res
    items = [('bnj%018x' % i, os.urandom(32)) for i in range(1, n + 1)]
    start = time.monotonic()
    _jceks.seal_secret_keys(items, PW, dialect='ibm', processes=1)
    sealed = time.monotonic() - start
    fp_secs, res = ansible_module('tapecrypt.ekm.keystore_info', {'path': path, 'password': PW, 'fingerprints': True})
    assert res['keystore']['dialect'] == 'ibm' and len(res['keystore']['entries']) == n
    print('IBM dialect, %d iterations (IBM keytool\'s default): keystore module through ansible, %d keys in %.2f s = '
          '%.0f keys/s; sealing alone, one process: %.0f keys/s; keystore_info with the fingerprint of every key through '
          'ansible: %.2f s = %.0f keys/s' % (_jceks.IBM_DEFAULT_ITERATION_COUNT, n, secs, n / secs, n / sealed,
                                             fp_secs, n / fp_secs))


def playbook_timed(inventory, name, *extra):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=BUILD, ANSIBLE_NOCOLOR='1', ANSIBLE_RETRY_FILES_ENABLED='0',
               ANSIBLE_PIPELINING='1', PATH=BIN + os.pathsep + os.environ.get('PATH', ''))
    cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', inventory, os.path.join(ROOT, 'playbooks', name)] + list(extra)
    start = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    secs = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit('%s failed:\n%s' % (name, proc.stdout[-4000:]))
    changed = sum(int(n) for n in re.findall(r'\bchanged=(\d+)', proc.stdout.split('PLAY RECAP')[-1]))
    return secs, changed, proc.stdout


def bench_lab_sync(workdir, n):
    """10000 keys on a primary and a redundant lab host; what a scheduled no-change run costs."""
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'standin'))
    import standin_fixtures  # pylint: disable=import-outside-toplevel,import-error
    archive = str(standin_fixtures.build_archive(os.path.join(workdir, 'dist')))
    with open(archive + '.sha256', encoding='utf-8') as f:
        sha = f.read().split()[0]
    lab = os.path.join(workdir, 'lab')
    env = dict(os.environ, MH_HOSTS='primary redundant', MH_SLOT='30')
    subprocess.run([os.path.join(ROOT, 'tests', 'lab', 'mh-up.sh'), lab], env=env, check=True, stdout=subprocess.DEVNULL)
    try:
        inv_dir = os.path.join(workdir, 'inventory')
        os.makedirs(os.path.join(inv_dir, 'group_vars'))
        os.makedirs(os.path.join(workdir, 'backup'))
        shutil.copy(os.path.join(lab, 'inventory.yml'), os.path.join(inv_dir, 'hosts.yml'))
        group_vars = {
            'ekm_seed': {'site': 'bench', 'keystore_password': PW, 'key_ranges': [{'prefix': 'BNC', 'first': 1, 'count': n}],
                         # EKM opens every key of symmetricKeySet at start; the keystore holds all n keys either way.
                         'symmetric_key_set': 'BNC001-010', 'accept_unknown_drives': True},
            'ekm_server_archive': archive,
            'ekm_server_archive_sha256': sha,
            'ekm_server_main_class': 'tapecrypt.standin.EkmStandin',
            'ekm_server_java_options': ['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xmx256m'],
            'ekm_host_settings': {'standin.listen.address': '{{ ansible_host }}'},
            'ekm_server_probe_address': '{{ ansible_host }}',
            # Sealing cost is measured above; here only what a sync costs matters.
            'ekm_primary_keystore_iteration_count': 1000,
            'ekm_primary_verify_with_keytool': False,
            # Keys are served only once a verified backup set holds them: the sets go to the controller (a 5 MB
            # keystore per set), and verify.yml checks them as it does by default.
            'ekm_backup_where': 'controller',
            'ekm_backup_controller_dest': os.path.join(workdir, 'backup'),
        }
        with open(os.path.join(inv_dir, 'group_vars', 'all.yml'), 'w', encoding='utf-8') as f:
            json.dump(group_vars, f)
        setup, _c, _out = playbook_timed(inv_dir, 'site.yml')
        print('lab: site.yml provisioning a primary and a redundant with %d keys: %.1f s' % (n, setup))
        secs, changed, _out = playbook_timed(inv_dir, 'sync.yml')
        print('lab: sync.yml, no change, %d keys: %.1f s, changed=%d' % (n, secs, changed))
        secs, changed, _out = playbook_timed(inv_dir, 'verify.yml')
        print('lab: verify.yml, no change, %d keys: %.1f s, changed=%d' % (n, secs, changed))
        ledger_path = os.path.join(inv_dir, 'ekm-ledger', 'bench-key-ledger.jsonl')
        os.makedirs(os.path.dirname(ledger_path))
        # A real collection first (each server's true metadata position), then the records of years of cartridges.
        playbook_timed(inv_dir, 'collect_ledger.yml')
        write_ledger(ledger_path, LEDGER_RECORDS, n, servers=('primary',), positions=False)
        secs, changed, _out = playbook_timed(inv_dir, 'verify.yml')
        print('lab: verify.yml, no change, %d keys and %d ledger records: %.1f s (goal < 10 s), changed=%d'
              % (n, LEDGER_RECORDS, secs, changed))
        add, _c, _out = playbook_timed(inv_dir, 'add_keys.yml', '-e', json.dumps(
            {'ekm_add_key_ranges': [{'prefix': 'BNC', 'first': n + 1, 'count': 100}]}), '--limit', 'ekm_primary')
        secs, changed, out = playbook_timed(inv_dir, 'sync.yml', '-v')
        moved = re.findall(r'Replaced from the primary: ([^"\n]*)', out)
        print('lab: 100 keys added on the primary (add_keys.yml on the primary only: %.1f s); then sync.yml: %.1f s, '
              'changed=%d, files that travelled: %s' % (add, secs, changed, moved[0] if moved else 'none'))
    finally:
        subprocess.run([os.path.join(ROOT, 'tests', 'lab', 'mh-down.sh'), lab], check=False, stdout=subprocess.DEVNULL)


def write_ledger(path, records, keys, servers=('ekm1',), positions=True):
    """A ledger of ``records`` key usage records over ``keys`` aliases, collected just now from ``servers``
    (``positions=False``: only the records, where a real collection has written the servers' positions)."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ledger  # pylint: disable=import-outside-toplevel
    ledger = _ledger.Ledger.load(path)
    uses = [{'volser': 'V%06d' % i, 'key_alias_1': 'bnc%018x' % (i % keys + 1), 'key_alias_2': '', 'dki': '%016x' % i,
             'drive_serial': 'D%02d' % (i % 16), 'wwn': '57574E414D453030', 'created': '2026-01-01T00:00:00.%06dZ' % i}
            for i in range(records)]
    lines = ledger.new_lines(uses, servers[0], {'inode': 1, 'offset': 0, 'head': None} if positions else None)
    for server in servers[1:] if positions else ():
        lines += ledger.new_lines([], server, {'inode': 2, 'offset': 0, 'head': None})
    ledger.append(lines)


def bench_ledger(workdir, records, keys):
    """The ledger and verify_report at scale, in-process."""
    from ansible_collections.tapecrypt.ekm.plugins.module_utils import _ledger  # pylint: disable=import-outside-toplevel
    from ansible_collections.tapecrypt.ekm.plugins.plugin_utils import _verify  # pylint: disable=import-outside-toplevel
    path = os.path.join(workdir, 'ledger.jsonl')
    start = time.monotonic()
    write_ledger(path, records, keys)
    appended = time.monotonic() - start
    start = time.monotonic()
    ledger = _ledger.Ledger.load(path)
    used = ledger.aliases_used()
    loaded = time.monotonic() - start
    start = time.monotonic()
    again = ledger.new_lines([dict(u) for u in ledger.uses[:1000]], 'ekm1', {'inode': 1, 'offset': 0, 'head': None})
    dedup = time.monotonic() - start
    ks = {'keystore': {'exists': True, 'count': keys, 'digest': 'ab' * 32}}
    inputs = {'ekm1': {'keystore': ks}, 'ekm2': {'keystore': ks, 'sync': {'in_sync': True, 'drift': {}}}}
    start = time.monotonic()
    report = _verify.build(inputs, 'ekm1', ['ekm2'], ledger={'ledger': ledger.summary(), 'aliases_used': used})
    page = _verify.html_page(report)
    decided = time.monotonic() - start
    size = os.path.getsize(path) / 1e6
    print('ledger: %d records over %d keys appended in %.2f s (%.1f MB); loaded and every alias with its VolSers in '
          '%.2f s; 1000 known records offered again: %d added in %.3f s'
          % (records, keys, appended, size, loaded, len(again), dedup))
    print('ledger: verify_report with cartridges per key for %d keys, HTML page %.1f MB: %.2f s'
          % (len(used), len(page) / 1e6, decided))


def _figure(samples):
    ordered = sorted(samples)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return 'median %.1f s, maximum %.1f s (%s)' % (median, ordered[-1], ' '.join('%.1f' % x for x in samples))


def _recovery_rulebook(lab, samples):
    lab.start_rulebook(interval=1, settle=1.5)
    figures = []
    for _sample in range(samples):
        lab.write_cartridge()
        secs = lab.wait_equal(300)
        if secs is None:
            raise SystemExit('the redundant did not catch up within 300 s; rulebook log:\n' + lab.log()[-4000:])
        figures.append(secs)
        # The next cartridge once the rulebook is idle again (its verify run done), so each figure stands alone.
        while not lab.lock_free():
            time.sleep(0.25)
        time.sleep(1.0)
    lab.stop_rulebook()
    return figures


def _recovery_timer(lab, samples, interval=30):
    """sync.yml at every multiple of ``interval`` s of the clock, as a systemd timer with OnCalendar=*:*:0/30 starts
    it (a tick while a run is still going starts nothing); cartridges at random moments."""
    import random  # pylint: disable=import-outside-toplevel
    import threading  # pylint: disable=import-outside-toplevel
    stop = threading.Event()

    def timer():
        while not stop.is_set():
            time.sleep(interval - time.time() % interval)
            if not stop.is_set():
                lab.playbook('sync.yml')
    thread = threading.Thread(target=timer, daemon=True)
    thread.start()
    figures = []
    for _sample in range(samples):
        time.sleep(random.uniform(0, interval))
        lab.write_cartridge()
        secs = lab.wait_equal(3 * interval + 120)
        if secs is None:
            raise SystemExit('the redundant did not catch up under the timer')
        figures.append(secs)
    stop.set()
    thread.join()
    return figures


def bench_recovery(workdir, samples):
    """Recovery point with the rulebook and with the shortest timer, on two SSH lab hosts with the stand-in EKM."""
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    sys.path.insert(0, os.path.join(ROOT, 'tests', 'eda'))
    import run_all  # pylint: disable=import-outside-toplevel,import-error
    import eda_lab  # pylint: disable=import-outside-toplevel,import-error
    os.environ.setdefault('TAPECRYPT_RULEBOOK_BIN', run_all.rulebook_venv())
    lab = eda_lab.EdaLab(os.path.join(workdir, 'recovery'), slot=31)
    os.makedirs(lab.workdir)
    try:
        lab.start()
        lab.provision()
        figures = _recovery_rulebook(lab, samples)
        print('recovery point, rulebook tapecrypt.ekm.ekm_sync running (look every 1 s, settle 1.5 s), %d cartridges: %s'
              % (samples, _figure(figures)))
        figures = _recovery_timer(lab, samples)
        print('recovery point, sync.yml every 30 s (shortest documented timer interval), %d cartridges: %s'
              % (samples, _figure(figures)))
    finally:
        lab.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--keys', type=int, default=1000, help='keys the module creates (default 1000)')
    ap.add_argument('--keytool-keys', type=int, default=20)
    ap.add_argument('--info-entries', type=int, default=10000)
    ap.add_argument('--lab-keys', type=int, default=10000, help='keys for the lab sync figures; 0 skips them')
    ap.add_argument('--keytool-backend-keys', type=int, default=1000, help='keys for the batched keytool backend')
    ap.add_argument('--per-key-keys', type=int, default=20, help='keys for the one-JVM-per-key figure it is compared with')
    ap.add_argument('--ibm-keys', type=int, default=10000, help='keys for the IBM-dialect figures')
    ap.add_argument('--recovery-samples', type=int, default=10, help='cartridges per recovery-point figure; 0 skips')
    ap.add_argument('--sections', default=','.join(SECTIONS), help='comma-separated subset of: %s' % ', '.join(SECTIONS))
    args = ap.parse_args()
    sections = set(args.sections.split(','))
    if not sections <= set(SECTIONS):
        ap.error('unknown section(s): %s' % ', '.join(sorted(sections - set(SECTIONS))))
    ensure_collection_link()
    workdir = tempfile.mkdtemp(prefix='tapecrypt-bench-')
    try:
        print('tapecrypt.ekm bench on %d CPU(s), %s' % (os.cpu_count(), time.strftime('%Y-%m-%d %H:%M:%S')))
        mod_per = None
        if 'module' in sections:
            mod_secs, again_secs, again_changed = bench_module(workdir, args.keys)
            mod_per = mod_secs / args.keys
            print('keystore module, %d keys at 200000 iterations: %.1f s total, %.4f s/key' % (args.keys, mod_secs, mod_per))
            print('keystore module, same task again (no change, changed=%s): %.2f s' % (again_changed, again_secs))
        if 'keytool' in sections:
            kt_secs = bench_keytool(workdir, args.keytool_keys)
            kt_per = kt_secs / args.keytool_keys
            print('keytool -genseckey, one JVM per key, %d keys: %.1f s total, %.4f s/key' % (args.keytool_keys, kt_secs, kt_per))
            if mod_per:
                print('ratio keytool/module per key: %.1fx' % (kt_per / mod_per))
        if 'info' in sections:
            inproc, via_ansible, summary, base = bench_info(workdir, args.info_entries)
            print('keystore_info, %d entries, no fingerprints: %.3f s in-process (read, integrity check, inventory); through '
                  'ansible: %.2f s with every entry listed, %.2f s with entries=false; %.2f s for a 1-entry keystore '
                  '(Ansible start-up)' % (args.info_entries, inproc, via_ansible, summary, base))
        if 'lab' in sections and args.lab_keys:
            bench_lab_sync(workdir, args.lab_keys)
        if 'keytool-backend' in sections and args.keytool_backend_keys:
            bench_keytool_backend(workdir, args.keytool_backend_keys, args.per_key_keys)
        if 'ibm' in sections and args.ibm_keys:
            bench_ibm(workdir, args.ibm_keys)
        if 'ledger' in sections:
            bench_ledger(workdir, LEDGER_RECORDS, args.info_entries)
        if 'recovery' in sections and args.recovery_samples:
            bench_recovery(workdir, args.recovery_samples)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
