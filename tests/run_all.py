# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run every test stage of tapecrypt.ekm and end with one ``total: N passed, N failed`` line.

Stages run in four lanes at once (see ``LAB_STAGES``); within a lane, one after another. A failing
stage does not stop the others, so one run shows everything that is wrong. Each stage's full output goes to ``tests/output/logs/<stage>.log``
and is echoed; the counts come from JUnit XML (pytest's ``--junitxml``, ansible-test's
``tests/output/junit/``: one case per test, sanity test and integration target), and one result
per lint tool and per Molecule scenario.

The default venv (``.venv``, ansible-core 2.19) runs every stage. ``unit-2.X``, ``functional-2.X``,
``sanity-2.X`` and ``integration-2.X`` run the same tests on another ansible-core series, in a venv
built here from ``tests/requirements/ansible-core-2.X.txt`` with a controller Python that series
supports (``CORES``). A series whose Python is not on this machine is reported as not tested; with
``TAPECRYPT_ALL_CORES=1`` in the environment (``.ci/run`` sets it) it counts as a failure.

Every tool runs with ``HOME`` set to ``.build/home``: ansible-test's caches and venvs, ansible-lint's
and Molecule's copies of collections never touch the user's ``~/.ansible``.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))
STAGE_ROOT = os.path.join(ROOT, '.build', 'at')
COLL = os.path.join(STAGE_ROOT, 'ansible_collections', 'tapecrypt', 'ekm')
LOGS = os.path.join(ROOT, 'tests', 'output', 'logs')
JUNIT = os.path.join(COLL, 'tests', 'output', 'junit')
PY_VERSION = '%d.%d' % sys.version_info[:2]
# An isolated home for every tool the stages start (see the module docstring).
TEST_HOME = os.path.join(ROOT, '.build', 'home')
CORE_VENVS = os.path.join(ROOT, '.build', 'venv')
# ansible-core series tested besides the default venv's -> controller Pythons to use, best first
# (each within the series' supported controller Pythons; the first one found on this machine is used).
CORES = {
    '2.17': ('3.10', '3.11'),
    '2.18': ('3.11',),
    '2.20': ('3.12',),
    '2.21': ('3.13', '3.12'),
}
NOT_TESTED = []
# Four lanes run at once; within a lane, stages run one after another. Two lab lanes: the stages that use SSH lab hosts
# or stand-in EKMs on ports of 127.0.0.1, split so that no two stages that can run at once share a port or a lab slot.
# The first (echoed as it comes): the stand-in and SSH lab tests and the playbook tests (tests/lab slots 80-99, ports
# 38011/2, 38021/2, 38041/2, 38311 and free ones). The second: the fault suite (tests/fault/playlab.py: 38061/2 and
# 38161/2, no SSH lab host), the examples (their Molecule scenario: 38611/2, 38621/2) and tests/eda (lab slots 6 and 7).
# The Molecule lane: ansible-lint and the Molecule scenarios (both use the collection's copy in the isolated home; each
# scenario has a lab slot of its own, 127.0.N.x, apart from the slots above). The tool lane: every other stage
# (ansible-test, plain pytest on local files, the JDK). The output of the last three goes to their logs (echoed only
# for a stage that fails). TAPECRYPT_SERIAL=1 runs every stage in one lane, echoed.
LAB_STAGES = ('standin', 'lab', 'playbooks')
FAULT_STAGES = ('fault', 'examples', 'eda')
MOLECULE_STAGES = ('lint', 'molecule')
QUIET = threading.local()
PRINT_LOCK = threading.Lock()


def env(venv_bin=VENV_BIN):
    e = dict(os.environ)
    e['PATH'] = venv_bin + os.pathsep + e.get('PATH', '')
    # pip's download cache stays the user's (a cold one would download every sanity venv again on each run).
    e.setdefault('PIP_CACHE_DIR', os.path.join(os.path.expanduser('~'), '.cache', 'pip'))
    e['HOME'] = TEST_HOME
    e.pop('ANSIBLE_HOME', None)
    e.pop('ANSIBLE_COLLECTIONS_PATH', None)
    e.setdefault('ANSIBLE_FORCE_COLOR', '0')
    e['PY_COLORS'] = '0'
    e['ANSIBLE_NOCOLOR'] = '1'
    return e


def run(name, cmd, cwd=ROOT, extra_env=None, venv_bin=VENV_BIN):
    """Run one command, echo and log its output, return (rc, output)."""
    os.makedirs(LOGS, exist_ok=True)
    e = env(venv_bin)
    e.update(extra_env or {})
    echo = not getattr(QUIET, 'on', False)
    say('\n=== %s: %s' % (name, ' '.join(cmd)))
    out = []
    with open(os.path.join(LOGS, name + '.log'), 'w', encoding='utf-8') as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, errors='replace')
        for line in proc.stdout:
            if echo:
                sys.stdout.write(line)
            log.write(line)
            out.append(line)
        rc = proc.wait()
    sys.stdout.flush()
    if not echo and rc:
        tail = ''.join(out[-150:])
        say('=== %s exited %d; the end of its log (%s):\n%s' % (name, rc, os.path.join(LOGS, name + '.log'), tail))
    return rc, ''.join(out)


def say(text):
    """Print a line (one write, so that lines of two lanes never mix)."""
    with PRINT_LOCK:
        sys.stdout.write(text + '\n')
        sys.stdout.flush()


def junit_cases(paths):
    """(passed, failed, skipped) over the test cases of JUnit XML files (pytest's and ansible-test's)."""
    passed = failed = skipped = 0
    for path in paths:
        for case in ET.parse(path).getroot().iter('testcase'):
            if case.find('failure') is not None or case.find('error') is not None:
                failed += 1
            elif case.find('skipped') is not None:
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped


def junit_counts(rc, paths):
    """Counts from JUnit XML; a non-zero exit without a failed case (a crash, a missing report) is one failure."""
    passed, failed, _skipped = junit_cases(paths)
    if rc != 0 and failed == 0:
        failed = 1
    return passed, failed


def fresh_junit():
    """Empty ansible-test's JUnit directory, so that only this run's reports are counted."""
    shutil.rmtree(JUNIT, ignore_errors=True)
    return JUNIT


def stage_copy():
    """ansible-test needs a real ansible_collections/tapecrypt/ekm directory (not a symlink)."""
    os.makedirs(COLL, exist_ok=True)
    subprocess.run(['rsync', '-a', '--delete', '--exclude', '/.venv', '--exclude', '/.build', '--exclude', '/demo',
                    '--exclude', '/tests/output', '--exclude', '/.ansible', '--exclude', '__pycache__',
                    ROOT + '/', COLL + '/'], check=True)


def install_get_pip(venv_bin):
    """ansible-test downloads get-pip.py to bootstrap its venvs; this machine has no route to it. Put the offline
    stand-in where ansible-test looks, under the name of the pip version this ansible-test pins."""
    rc, out = run_quiet([os.path.join(venv_bin, 'python'), '-c',
                         'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))'])
    if rc:
        raise RuntimeError('ansible-test is not importable in %s: %s' % (venv_bin, out))
    with open(os.path.join(out.strip(), '_internal', 'python_requirements.py'), encoding='utf-8') as src:
        versions = set(re.findall(r"""\bpip(?:=|['"]\s*:\s*)['"](\d+(?:\.\d+)+)['"]""", src.read()))
    if not versions:
        raise RuntimeError('no pinned pip version found in ansible-test of %s' % venv_bin)
    cache = os.path.join(TEST_HOME, '.ansible', 'test', 'cache')
    os.makedirs(cache, exist_ok=True)
    for version in versions:
        shutil.copy(os.path.join(ROOT, 'tests', 'lab', 'get_pip_shim.py'),
                    os.path.join(cache, 'get_pip_%s.py' % version.replace('.', '_')))


def run_quiet(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors='replace',
                          stdin=subprocess.DEVNULL, env=env(), check=False)
    return proc.returncode, proc.stdout


def find_python(version):
    """A working interpreter for Python ``version`` (e.g. '3.12'): $PYTHON3_12, pythonX.Y on PATH, pyenv's, or None."""
    pyenv = os.environ.get('PYENV_ROOT') or os.path.join(pwd.getpwuid(os.getuid()).pw_dir, '.pyenv')
    candidates = [os.environ.get('PYTHON' + version.replace('.', '_')), shutil.which('python' + version)]
    candidates += sorted(glob.glob(os.path.join(pyenv, 'versions', version + '.*', 'bin', 'python' + version)),
                         reverse=True)
    candidates += ['/usr/local/bin/python' + version, '/usr/bin/python' + version]
    for cand in filter(None, candidates):
        if not os.access(cand, os.X_OK):
            continue
        rc, out = run_quiet([cand, '-c', 'import sys, ensurepip, venv; print("%d.%d" % sys.version_info[:2])'])
        if rc == 0 and out.strip() == version:
            return cand
    return None


def core_venv(series):
    """(venv bin directory, Python version) for ansible-core ``series``, built on first use; (None, reason) when no
    supported Python is on this machine."""
    wanted = CORES[series]
    for version in wanted:
        python = find_python(version)
        if python:
            break
    else:
        return None, 'needs Python %s, none found' % ' or '.join(wanted)
    reqs = os.path.join(ROOT, 'tests', 'requirements', 'ansible-core-%s.txt' % series)
    venv = os.path.join(CORE_VENVS, 'ansible-core-' + series)
    with open(reqs, 'rb') as f:
        stamp = '%s %s\n' % (os.path.realpath(python), hashlib.sha256(f.read()).hexdigest())
    stamp_path = os.path.join(venv, '.installed')
    if not os.path.isfile(stamp_path) or open(stamp_path, encoding='utf-8').read() != stamp:
        shutil.rmtree(venv, ignore_errors=True)
        for cmd in ([python, '-m', 'venv', venv],
                    [os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check',
                     '-r', reqs]):
            rc, out = run_quiet(cmd)
            if rc:
                raise RuntimeError('%s failed:\n%s' % (' '.join(cmd), out[-3000:]))
        with open(stamp_path, 'w', encoding='utf-8') as f:
            f.write(stamp)
    return os.path.join(venv, 'bin'), version


def ansible_test(name, command, venv_bin=VENV_BIN, py_version=PY_VERSION):
    """Run ``ansible-test <command>`` in the collection copy with the given venv; return (rc, output)."""
    install_get_pip(venv_bin)
    extra = {'units': [], 'sanity': ['--junit'], 'integration': ['--continue-on-error']}[command]
    return run(name, [os.path.join(venv_bin, 'ansible-test'), command, '--local', '--python', py_version,
                      '--color', 'no'] + extra, cwd=COLL, venv_bin=venv_bin)


def ansible_test_counts(command, rc):
    """Counts of an ansible-test run from its JUnit reports: one case per unit test and per sanity test; one result
    per integration target (its report holds one case per task), a target without a report being a failure."""
    if command != 'integration':
        return junit_counts(rc, glob.glob(os.path.join(JUNIT, '*.xml')))
    passed = failed = 0
    for target in integration_targets():
        reports = glob.glob(os.path.join(JUNIT, target + '-*.xml'))
        _p, bad, _s = junit_cases(reports)
        if reports and not bad:
            passed += 1
        else:
            failed += 1
    if rc != 0 and failed == 0:
        failed = 1
    return passed, failed


def integration_targets():
    root = os.path.join(COLL, 'tests', 'integration', 'targets')
    names = []
    for name in sorted(os.listdir(root)):
        aliases = os.path.join(root, name, 'aliases')
        words = open(aliases, encoding='utf-8').read().split() if os.path.isfile(aliases) else []
        if not set(words) & {'disabled', 'unsupported', 'hidden'}:
            names.append(name)
    return names


def _ansible_test_stage(command, series=None):
    """A stage running ``ansible-test <command>`` on the default venv or on ansible-core ``series``."""
    name = command if series is None else '%s-%s' % (command, series)

    def stage():
        venv_bin, py_version = VENV_BIN, PY_VERSION
        if series is not None:
            venv_bin, py_version = core_venv(series)
            if not_testable(name, series, venv_bin, py_version):
                return (0, 1) if os.environ.get('TAPECRYPT_ALL_CORES') == '1' else (0, 0)
        fresh_junit()
        rc, _out = ansible_test(name, 'units' if command == 'unit' else command, venv_bin, py_version)
        return ansible_test_counts(command, rc)
    return stage


def _pytest_dir(name, path, *extra, series=None):
    """A stage running plain pytest on ``path``, with the default venv or the venv of ansible-core ``series``."""
    def stage():
        python = sys.executable
        if series is not None:
            venv_bin, py_version = core_venv(series)
            if not_testable(name, series, venv_bin, py_version):
                return (0, 1) if os.environ.get('TAPECRYPT_ALL_CORES') == '1' else (0, 0)
            python = os.path.join(venv_bin, 'python')
        report = os.path.join(ROOT, 'tests', 'output', 'junit', name + '.xml')
        if os.path.exists(report):
            os.remove(report)
        rc, _out = run(name, [python, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--durations=10',
                              '--junitxml=' + report, path] + list(extra), venv_bin=os.path.dirname(python))
        return junit_counts(rc, [report] if os.path.exists(report) else [])
    return stage


def rulebook_venv():
    """bin directory of the ansible-rulebook venv (tests/requirements/ansible-rulebook.txt), built on first use with
    this Python (ansible-rulebook 1.3 runs on 3.11, with Java 17 on the machine)."""
    reqs = os.path.join(ROOT, 'tests', 'requirements', 'ansible-rulebook.txt')
    venv = os.path.join(CORE_VENVS, 'ansible-rulebook')
    with open(reqs, 'rb') as f:
        stamp = '%s %s\n' % (os.path.realpath(sys.executable), hashlib.sha256(f.read()).hexdigest())
    stamp_path = os.path.join(venv, '.installed')
    if not os.path.isfile(stamp_path) or open(stamp_path, encoding='utf-8').read() != stamp:
        shutil.rmtree(venv, ignore_errors=True)
        for cmd in ([sys.executable, '-m', 'venv', venv],
                    [os.path.join(venv, 'bin', 'python'), '-m', 'pip', 'install', '-q', '--disable-pip-version-check',
                     '-r', reqs]):
            rc, out = run_quiet(cmd)
            if rc:
                raise RuntimeError('%s failed:\n%s' % (' '.join(cmd), out[-3000:]))
        with open(stamp_path, 'w', encoding='utf-8') as f:
            f.write(stamp)
    return os.path.join(venv, 'bin')


def st_eda():
    """Event-driven and scheduled runs (tests/eda): the rulebook under the real ansible-rulebook, the schedule role."""
    report = os.path.join(ROOT, 'tests', 'output', 'junit', 'eda.xml')
    if os.path.exists(report):
        os.remove(report)
    rc, _out = run('eda', [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--durations=10',
                           '--junitxml=' + report,
                           'tests/eda'], extra_env={'TAPECRYPT_RULEBOOK_BIN': rulebook_venv()})
    return junit_counts(rc, [report] if os.path.exists(report) else [])


def not_testable(name, series, venv_bin, detail):
    """Report the venv chosen for ``series``; True (and noted as not tested) when there is none."""
    if venv_bin is None:
        NOT_TESTED.append('ansible-core %s (%s): %s' % (series, name, detail))
        say('\n=== %s: NOT TESTED, ansible-core %s %s' % (name, series, detail))
        return True
    say('\n=== %s: ansible-core %s on Python %s' % (name, series, detail))
    return False


def link_user_collection():
    """Molecule's prerun copies the collection into ~/.ansible/collections (here the isolated home's), and
    ansible-lint reads that copy first: a stale one from an earlier checkout would be what gets linted and run.
    A symlink to this checkout makes both use the working tree (and ansible-compat skips its copy)."""
    link = os.path.join(TEST_HOME, '.ansible', 'collections', 'ansible_collections', 'tapecrypt', 'ekm')
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
    'unit': _ansible_test_stage('unit'),
    'unit-2.17': _ansible_test_stage('unit', '2.17'),
    'unit-2.18': _ansible_test_stage('unit', '2.18'),
    'unit-2.20': _ansible_test_stage('unit', '2.20'),
    'unit-2.21': _ansible_test_stage('unit', '2.21'),
    'functional': _pytest_dir('functional', 'tests/functional'),
    'functional-2.17': _pytest_dir('functional-2.17', 'tests/functional', series='2.17'),
    'functional-2.18': _pytest_dir('functional-2.18', 'tests/functional', series='2.18'),
    'functional-2.20': _pytest_dir('functional-2.20', 'tests/functional', series='2.20'),
    'functional-2.21': _pytest_dir('functional-2.21', 'tests/functional', series='2.21'),
    'interop': _pytest_dir('interop', 'tests/interop'),
    'fault': _pytest_dir('fault', 'tests/fault'),
    'standin': _pytest_dir('standin', 'tests/standin', 'tests/demo'),
    'lab': _pytest_dir('lab', 'tests/lab'),
    'playbooks': _pytest_dir('playbooks', 'tests/playbooks'),
    'examples': _pytest_dir('examples', 'tests/examples'),
    'eda': st_eda,
    'sanity': _ansible_test_stage('sanity'),
    'sanity-2.17': _ansible_test_stage('sanity', '2.17'),
    'sanity-2.21': _ansible_test_stage('sanity', '2.21'),
    'integration': _ansible_test_stage('integration'),
    'integration-2.17': _ansible_test_stage('integration', '2.17'),
    'integration-2.21': _ansible_test_stage('integration', '2.21'),
    'lint': st_lint,
    'docs': st_docs,
    'molecule': st_molecule,
}


def run_lane(names, results, quiet):
    """Run ``names`` one after another into ``results`` (name -> (name, passed, failed, seconds))."""
    QUIET.on = quiet
    for name in names:
        start = time.monotonic()
        if quiet:
            say('=== %s: started (log %s)' % (name, os.path.join(LOGS, name + '.log')))
        try:
            passed, failed = STAGES[name]()
        except Exception as exc:  # a broken stage is a failure, never a silent pass
            say('stage %s crashed: %s' % (name, exc))
            passed, failed = 0, 1
        results[name] = (name, passed, failed, time.monotonic() - start)
        if quiet:
            say('=== %s: %d passed, %d failed in %.1f s' % (name, passed, failed, results[name][3]))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--stages', default=','.join(STAGES), help='comma-separated subset of: ' + ', '.join(STAGES))
    args = ap.parse_args()
    wanted = [s.strip() for s in args.stages.split(',') if s.strip()]
    unknown = [s for s in wanted if s not in STAGES]
    if unknown:
        ap.error('unknown stage(s): %s' % ', '.join(unknown))
    os.makedirs(TEST_HOME, exist_ok=True)
    if any(s.split('-')[0] in ('unit', 'sanity', 'integration', 'docs') for s in wanted):
        stage_copy()
    if any(s in ('lint', 'molecule') for s in wanted):
        link_user_collection()
    results = {}
    started = time.monotonic()
    if os.environ.get('TAPECRYPT_SERIAL') == '1':
        run_lane(wanted, results, quiet=False)
    else:
        quiet_lanes = [[s for s in wanted if s in FAULT_STAGES], [s for s in wanted if s in MOLECULE_STAGES],
                       [s for s in wanted if s not in LAB_STAGES + FAULT_STAGES + MOLECULE_STAGES]]
        threads = [threading.Thread(target=run_lane, args=(lane, results, True)) for lane in quiet_lanes if lane]
        for thread in threads:
            thread.start()
        run_lane([s for s in wanted if s in LAB_STAGES], results, quiet=False)
        for thread in threads:
            thread.join()
    results = [results[name] for name in wanted]
    print('\n%-17s %8s %8s %9s' % ('stage', 'passed', 'failed', 'seconds'))
    for name, passed, failed, secs in results:
        print('%-17s %8d %8d %9.1f' % (name, passed, failed, secs))
    total_p = sum(r[1] for r in results)
    total_f = sum(r[2] for r in results)
    for line in NOT_TESTED:
        print('not tested: ' + line)
    print('wall clock: %.1f seconds' % (time.monotonic() - started))
    print('total: %d passed, %d failed' % (total_p, total_f))
    return 1 if total_f or not total_p else 0


if __name__ == '__main__':
    sys.exit(main())
