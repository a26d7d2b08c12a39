# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for tests against the real JDK.

A missing JDK is a failure, never a skip: these tests are the only proof that Java reads what the
collection writes, and `make test` installs a JDK before it runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

JAVA_SOURCES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'java')
# keytool and java decode passwords from the environment and argv with the locale's charset.
JAVA_LOCALE = 'C.UTF-8'


class JavaCommandError(AssertionError):
    """A JDK tool exited non-zero; the message carries its output."""


def find_jdk_tool(name):
    java_home = os.environ.get('JAVA_HOME')
    if java_home and os.access(os.path.join(java_home, 'bin', name), os.X_OK):
        return os.path.join(java_home, 'bin', name)
    found = shutil.which(name)
    if not found:
        pytest.fail('%s was not found (JAVA_HOME or PATH). The interop tests need a JDK; `make test` installs '
                    'openjdk-17-jdk-headless.' % name, pytrace=False)
    return found


def java_env(extra=None):
    env = dict(os.environ)
    env.update({'LC_ALL': JAVA_LOCALE, 'LANG': JAVA_LOCALE})
    env.pop('JAVA_TOOL_OPTIONS', None)
    env.update(extra or {})
    return env


def _describe(argv):
    # The tool and, for java, the class it runs; enough to tell the failing command without echoing passwords.
    words = [os.path.basename(argv[0])]
    if words[0] == 'java' and 'KeyCheck' in argv:
        words.append('KeyCheck')
    return ' '.join(words)


def run_java_tool(argv, env=None, check=True):
    proc = subprocess.run(argv, env=java_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, encoding='utf-8', errors='replace', timeout=300, check=False)
    if check and proc.returncode != 0:
        raise JavaCommandError('%s exited with %d\nstdout:\n%s\nstderr:\n%s' % (
            _describe(argv), proc.returncode, proc.stdout, proc.stderr))
    return proc


@pytest.fixture(scope='session')
def jdk():
    return {name: find_jdk_tool(name) for name in ('java', 'javac', 'keytool')}


@pytest.fixture(scope='session')
def keytool(jdk):
    """keytool(*args, storepass=..., keypass=..., check=True) -> CompletedProcess.

    Passwords travel in environment variables (keytool's `-storepass:env`), never on argv.
    """
    def run(*args, storepass=None, keypass=None, srcstorepass=None, deststorepass=None, check=True):
        argv = [jdk['keytool'], '-noprompt'] + [str(a) for a in args]
        env = {}
        for option, value in (('storepass', storepass), ('keypass', keypass),
                              ('srcstorepass', srcstorepass), ('deststorepass', deststorepass)):
            if value is not None:
                variable = 'TC_' + option.upper()
                env[variable] = value
                argv += ['-%s:env' % option, variable]
        return run_java_tool(argv, env, check)
    return run


@pytest.fixture(scope='session')
def java_keycheck(jdk, tmp_path_factory):
    """java_keycheck(path, storepass, keypass=None) -> {alias: (fingerprint, algorithm, bits)}.

    Runs tests/interop/java/KeyCheck.java (compiled once per session): the JDK's own KeyStore
    loads the file and getKey() unseals every secret key. Keyword arguments: storetype (default
    JCEKS) and keypasses, a dict alias -> key password for entries with their own password.
    Raises JavaCommandError when Java cannot load the store or a key.
    """
    classes = str(tmp_path_factory.mktemp('keycheck'))
    run_java_tool([jdk['javac'], '-d', classes, os.path.join(JAVA_SOURCES, 'KeyCheck.java')])

    def check(path, storepass, keypass=None, storetype='JCEKS', keypasses=None):
        argv = [jdk['java'], '-cp', classes, 'KeyCheck', storetype, str(path), storepass]
        if keypass is not None or keypasses:
            argv.append(storepass if keypass is None else keypass)
        argv += ['%s=%s' % item for item in sorted((keypasses or {}).items())]
        result = {}
        for line in run_java_tool(argv).stdout.splitlines():
            alias, fingerprint, algorithm, bits = line.split('\t')
            result[alias] = (fingerprint, algorithm, int(bits))
        return result
    return check
