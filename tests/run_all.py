# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run every test stage of tapecrypt.ekm and end with one ``total: N passed, N failed`` line.

Stages run one after another; a failing stage does not stop the others, so one run shows
everything that is wrong. Each stage's full output goes to ``tests/output/logs/<stage>.log``
and is echoed; the counts come from the tools' own summaries (pytest's closing line,
ansible-test's list of sanity tests and integration targets, one result per lint tool and per
Molecule scenario).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
STAGE_ROOT = os.path.join(ROOT, '.build', 'at')
COLL = os.path.join(STAGE_ROOT, 'ansible_collections', 'tapecrypt', 'ekm')
LOGS = os.path.join(ROOT, 'tests', 'output', 'logs')
PY = 'python%d.%d' % sys.version_info[:2]
PY_VERSION = '%d.%d' % sys.version_info[:2]


def env():
    e = dict(os.environ)
    e['PATH'] = VENV_BIN + os.pathsep + e.get('PATH', '')
    e.setdefault('ANSIBLE_FORCE_COLOR', '0')
    e['PY_COLORS'] = '0'
    e['ANSIBLE_NOCOLOR'] = '1'
    return e


def run(name, cmd, cwd=ROOT, extra_env=None):
    """Run one command, echo and log its output, return (rc, output)."""
    os.makedirs(LOGS, exist_ok=True)
    e = env()
    e.update(extra_env or {})
    print('\n=== %s: %s' % (name, ' '.join(cmd)), flush=True)
    out = []
    with open(os.path.join(LOGS, name + '.log'), 'w', encoding='utf-8') as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors='replace')
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
            out.append(line)
        rc = proc.wait()
    sys.stdout.flush()
    return rc, ''.join(out)


def pytest_counts(rc, output):
    """Counts from pytest's closing lines, summed (ansible-test units runs one pytest session per plugin type).

    A crash without a summary counts as one failure.
    """
    summary = re.compile(r'^=*\s*(\d+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected|warnings?)(, )?)+.* in [\d.]+s')
    passed = failed = 0
    for line in output.splitlines():
        if not summary.match(line):
            continue
        for num, word in re.findall(r'(\d+) (passed|failed|errors?|xpassed)', line):
            if word in ('passed', 'xpassed'):
                passed += int(num)
            else:
                failed += int(num)
    if rc != 0 and failed == 0:
        failed = 1
    return passed, failed


def stage_copy():
    """ansible-test needs a real ansible_collections/tapecrypt/ekm directory (not a symlink)."""
    os.makedirs(COLL, exist_ok=True)
    subprocess.run(['rsync', '-a', '--delete', '--exclude', '/.venv', '--exclude', '/.build', '--exclude', '/demo',
                    '--exclude', '/tests/output', '--exclude', '/.ansible', '--exclude', '__pycache__',
                    ROOT + '/', COLL + '/'], check=True)
    cache = os.path.expanduser('~/.ansible/test/cache')
    os.makedirs(cache, exist_ok=True)
    # ansible-test downloads get-pip.py to bootstrap its venvs; this machine has no route to it.
    shutil.copy(os.path.join(ROOT, 'tests', 'lab', 'get_pip_shim.py'), os.path.join(cache, 'get_pip_24_2.py'))


def st_unit():
    rc, out = run('unit', ['ansible-test', 'units', '--local', '--python', PY_VERSION, '--color', 'no'], cwd=COLL)
    return pytest_counts(rc, out)


def _pytest_dir(name, path, *extra):
    def stage():
        rc, out = run(name, [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', path] + list(extra))
        return pytest_counts(rc, out)
    return stage


def st_sanity():
    rc, out = run('sanity', ['ansible-test', 'sanity', '--local', '--python', PY_VERSION, '--color', 'no'], cwd=COLL)
    ran = re.findall(r'^Running sanity test "([^"]+)"', out, re.M)
    m = re.search(r'The (\d+) sanity test\(s\) listed below \(out of \d+\) failed', out)
    failed = int(m.group(1)) if m else 0
    if rc != 0 and failed == 0:
        failed = 1
    return max(len(ran) - failed, 0), failed


def st_integration():
    rc, out = run('integration', ['ansible-test', 'integration', '--local', '--python', PY_VERSION, '--color', 'no',
                                  '--continue-on-error'], cwd=COLL)
    ran = re.findall(r'^Running (\S+) integration test role', out, re.M)
    m = re.search(r'The (\d+) integration test\(s\) listed below', out)
    failed = int(m.group(1)) if m else (1 if rc else 0)
    return max(len(ran) - failed, 0), failed


def link_user_collection():
    """Molecule's prerun copies the collection into ~/.ansible/collections, and ansible-lint reads that
    copy first: a stale one from an earlier checkout would be what gets linted and run. A symlink to
    this checkout makes both use the working tree (and ansible-compat skips its copy)."""
    link = os.path.expanduser('~/.ansible/collections/ansible_collections/tapecrypt/ekm')
    if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(ROOT):
        return
    if os.path.islink(link) or os.path.isfile(link):
        os.remove(link)
    elif os.path.isdir(link):
        shutil.rmtree(link)
    os.makedirs(os.path.dirname(link), exist_ok=True)
    os.symlink(ROOT, link)


def st_lint():
    link_user_collection()
    rc, _out = run('ansible-lint', ['ansible-lint', '--offline'])
    return (1, 0) if rc == 0 else (0, 1)


def st_docs():
    rc, _out = run('docs-lint', ['antsibull-docs', 'lint-collection-docs', '--plugin-docs', '.'], cwd=COLL)
    return (1, 0) if rc == 0 else (0, 1)


def st_molecule():
    scen_root = os.path.join(ROOT, 'extensions', 'molecule')
    scenarios = sorted(d for d in os.listdir(scen_root)
                       if os.path.isfile(os.path.join(scen_root, d, 'molecule.yml'))) if os.path.isdir(scen_root) else []
    passed = failed = 0
    link_user_collection()
    for scen in scenarios:
        rc, _out = run('molecule-' + scen, ['molecule', 'test', '-s', scen])
        if rc == 0:
            passed += 1
        else:
            failed += 1
    return passed, failed


STAGES = {
    'unit': st_unit,
    'interop': _pytest_dir('interop', 'tests/interop'),
    'standin': _pytest_dir('standin', 'tests/standin', 'tests/demo'),
    'lab': _pytest_dir('lab', 'tests/lab'),
    'playbooks': _pytest_dir('playbooks', 'tests/playbooks'),
    'examples': _pytest_dir('examples', 'tests/examples'),
    'sanity': st_sanity,
    'integration': st_integration,
    'lint': st_lint,
    'docs': st_docs,
    'molecule': st_molecule,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--stages', default=','.join(STAGES), help='comma-separated subset of: ' + ', '.join(STAGES))
    args = ap.parse_args()
    wanted = [s.strip() for s in args.stages.split(',') if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        ap.error('unknown stage(s): %s' % ', '.join(unknown))
    if any(s in wanted for s in ('unit', 'sanity', 'integration', 'docs')):
        stage_copy()
    results = []
    for name in wanted:
        start = time.monotonic()
        try:
            passed, failed = STAGES[name]()
        except Exception as exc:  # a broken stage is a failure, never a silent pass
            print('stage %s crashed: %s' % (name, exc))
            passed, failed = 0, 1
        results.append((name, passed, failed, time.monotonic() - start))
    print('\n%-12s %8s %8s %9s' % ('stage', 'passed', 'failed', 'seconds'))
    for name, passed, failed, secs in results:
        print('%-12s %8d %8d %9.1f' % (name, passed, failed, secs))
    total_p = sum(r[1] for r in results)
    total_f = sum(r[2] for r in results)
    print('total: %d passed, %d failed' % (total_p, total_f))
    return 1 if total_f or not total_p else 0


if __name__ == '__main__':
    sys.exit(main())
