# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build, install, configure and run the stand-in EKM; shared by its tests, Molecule and the demo.

Plain functions and one class, no pytest dependency:

    archive = build_archive(outdir)                  # bash build.sh OUTDIR
    home = install_archive(archive, dest)            # dest/ekm-standin-0.1.0
    make_keystore(path, password, sequential_aliases('DCA', 1, 3))   # the real keytool
    config = write_site_config(directory, keystore, password, 'DCA001-003')
    with StandinServer(home, config) as server:      # waits for READY, always stops it
        server.request('PING')

Command line: ``python3 standin_fixtures.py build OUTDIR`` prints the archive's path.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The stand-in's sources, build script and tape client ship in the collection, in the standin role.
SOURCES = HERE.parent.parent / 'roles' / 'standin' / 'files'
VERSION = '0.1.0'
PACKAGE = f'ekm-standin-{VERSION}'
MAIN_CLASS = 'tapecrypt.standin.EkmStandin'
FATAL_EXIT = 2
READY = re.compile(r'^EKM-STANDIN READY port=(\d+) keys=(\d+)$', re.MULTILINE)
# Short-lived test servers on a shared 2-core machine start faster with the quick compiler and a small heap.
JAVA_OPTIONS = ('-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xmx128m')
_KEYTOOL_PASSWORD_VAR = 'TAPECRYPT_STANDIN_STOREPASS'


class StandinError(RuntimeError):
    """The stand-in could not be built, installed or started; the message says why."""


def require_jdk(tools: tuple[str, ...] = ('java', 'javac', 'jar', 'keytool')) -> None:
    """Fails (never skips) when a JDK tool is missing: these tests are worthless without Java."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise StandinError(f"the stand-in EKM needs a JDK (11 or newer): {', '.join(missing)} not found on PATH")


def build_archive(outdir: str | os.PathLike) -> Path:
    """Runs build.sh; returns the path of ``ekm-standin-0.1.0.tar.gz`` (a ``.sha256`` file sits beside it)."""
    require_jdk(('javac', 'jar'))
    result = subprocess.run(['bash', str(SOURCES / 'build.sh'), str(outdir)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StandinError(f'build.sh failed with exit code {result.returncode}: {result.stderr.strip()}')
    return Path(result.stdout.strip().splitlines()[-1])


def install_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Unpacks the archive into dest; returns the package directory (the one holding ``lib/``)."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, 'data_filter'):
            tar.extractall(dest, filter='data')
        else:  # Python before 3.11.4: the archive is our own build, its members are plain files.
            tar.extractall(dest)
    home = Path(dest) / PACKAGE
    if not (home / 'lib' / 'ekm-standin.jar').is_file():
        raise StandinError(f'{archive} does not hold {PACKAGE}/lib/ekm-standin.jar')
    return home


def classpath(home: str | os.PathLike) -> str:
    return str(Path(home) / 'lib' / '*')


def sequential_aliases(prefix: str, first: int, last: int) -> list[str]:
    """EKM's sequential aliases: the 3-letter prefix and an 18-digit hex counter, lower case as JCEKS keeps them."""
    return [f'{prefix.lower()}{n:018x}' for n in range(first, last + 1)]


def make_keystore(path: str | os.PathLike, password: str, aliases: list[str], *, keyalg: str = 'AES', keysize: int = 256,
                  keytool: str = 'keytool') -> Path:
    """Adds one freshly generated secret key per alias with the JDK's own keytool (creating the JCEKS file).

    Passwords go through the environment, never the command line. Each call is a JVM start
    (about half a second), so callers that need several keystores make them in parallel.
    """
    require_jdk(('keytool',))
    env = dict(os.environ, LANG='C', LC_ALL='C', **{_KEYTOOL_PASSWORD_VAR: password})
    for alias in aliases:
        cmd = [keytool, '-J-XX:TieredStopAtLevel=1', '-J-XX:+UseSerialGC', '-genseckey', '-alias', alias,
               '-keyalg', keyalg, '-keysize', str(keysize), '-storetype', 'JCEKS', '-keystore', str(path),
               '-storepass:env', _KEYTOOL_PASSWORD_VAR, '-keypass:env', _KEYTOOL_PASSWORD_VAR]
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0:
            raise StandinError(f'keytool -genseckey {alias} into {path} failed: {(result.stdout + result.stderr).strip()}')
    return Path(path)


def _escape(text: str, key: bool) -> str:
    out = []
    for i, ch in enumerate(text):
        if ch == '\\':
            out.append('\\\\')
        elif ch == '\n':
            out.append('\\n')
        elif ch in '=:#!' and key:
            out.append('\\' + ch)
        elif ch == ' ' and (key or i == 0):
            out.append('\\ ')
        elif ord(ch) > 0x7e:
            out.append(f'\\u{ord(ch):04x}')
        else:
            out.append(ch)
    return ''.join(out)


def write_properties(path: str | os.PathLike, settings: dict) -> Path:
    """Writes a Java .properties file (ISO-8859-1 safe escaping); booleans become true/false."""
    lines = ['# Written by tests/standin/standin_fixtures.py']
    for key, value in settings.items():
        if isinstance(value, bool):
            value = 'true' if value else 'false'
        lines.append(f'{_escape(str(key), True)}={_escape(str(value), False)}')
    Path(path).write_text('\n'.join(lines) + '\n', encoding='ascii')
    return Path(path)


def site_settings(keystore: str | os.PathLike, password: str, key_set: str, *, port: int = 0,
                  accept_unknown_drives: bool = True) -> dict:
    """The KeyManagerConfig.properties settings of one stand-in site, files beside the config.

    Port 0 lets the server pick a free port (reported in READY), so parallel test runs never collide.
    """
    return {
        'config.keystore.file': str(keystore),
        'config.keystore.type': 'jceks',
        'config.keystore.password': password,
        'TransportListener.tcp.port': port,
        'TransportListener.ssl.port': 4443,
        'symmetricKeySet': key_set,
        'config.drivetable.file.url': 'FILE:filedrive.table',
        'config.keygroup.xml.file': 'FILE:KeyGroups.xml',
        'drive.acceptUnknownDrives': accept_unknown_drives,
        'Audit.handler.file.directory': 'audit',
        'Audit.handler.file.name': 'ekm.log',
        'Audit.metadata.file.name': 'metadata/ekm-metadata.xml',
    }


def write_site_config(directory: str | os.PathLike, keystore: str | os.PathLike, password: str, key_set: str,
                      overrides: dict | None = None, **kwargs) -> Path:
    """Writes ``directory/KeyManagerConfig.properties``; an override of None drops that key."""
    settings = site_settings(keystore, password, key_set, **kwargs)
    for key, value in (overrides or {}).items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    Path(directory).mkdir(parents=True, exist_ok=True)
    return write_properties(Path(directory) / 'KeyManagerConfig.properties', settings)


def java_command(home: str | os.PathLike, config: str | os.PathLike, java: str = 'java') -> list[str]:
    return [java, *JAVA_OPTIONS, '-cp', classpath(home), MAIN_CLASS, str(config)]


def run_to_exit(home: str | os.PathLike, config: str | os.PathLike, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """Runs a stand-in expected to refuse to start; a server that starts instead is killed at the timeout."""
    require_jdk(('java',))
    try:
        return subprocess.run(java_command(home, config), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise StandinError(f'the stand-in with {config} did not exit within {timeout} s (it started?): {exc.stdout!r}') from exc


def request(address: tuple[str, int], line: str, timeout: float = 15.0) -> str:
    """One request line to a stand-in, its reply line back (without the newline)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(line.encode('utf-8') + b'\n')
        reply = b''
        while not reply.endswith(b'\n'):
            chunk = sock.recv(4096)
            if not chunk:
                raise StandinError(f'{address[0]}:{address[1]} closed the connection after {line.split()[0]!r} without a full reply')
            reply += chunk
    return reply[:-1].decode('utf-8')


class StandinServer:
    """One stand-in process: ``start()`` waits for READY, ``stop()`` always ends it (SIGTERM, then SIGKILL).

    stdout and stderr go to files in ``log_dir`` (default: beside the config) so that a
    failure can be read afterwards and the pipes never fill up.
    """

    def __init__(self, home: str | os.PathLike, config: str | os.PathLike, *, host: str = '127.0.0.1',
                 log_dir: str | os.PathLike | None = None, ready_timeout: float = 60.0, java: str = 'java'):
        self.home = Path(home)
        self.config = Path(config)
        self.host = host
        self.log_dir = Path(log_dir) if log_dir else self.config.parent
        self.ready_timeout = ready_timeout
        self.java = java
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.keys: int | None = None
        self.returncode: int | None = None
        self._start_count = 0

    @property
    def address(self) -> tuple[str, int]:
        if self.port is None:
            raise StandinError('the stand-in has not been started')
        return self.host, self.port

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / f'standin.{self._start_count}.out'

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / f'standin.{self._start_count}.err'

    def stdout(self) -> str:
        return self.stdout_path.read_text(encoding='utf-8', errors='replace') if self.stdout_path.exists() else ''

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding='utf-8', errors='replace') if self.stderr_path.exists() else ''

    def start(self) -> StandinServer:
        if self.process is not None and self.process.poll() is None:
            raise StandinError('this stand-in is already running')
        require_jdk(('java',))
        self._start_count += 1
        self.port = self.keys = self.returncode = None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, 'wb') as out, open(self.stderr_path, 'wb') as err:
            # Outlives this block on purpose: stop() reaps it.
            self.process = subprocess.Popen(java_command(self.home, self.config, self.java),  # pylint: disable=consider-using-with
                                            stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.ready_timeout
        while True:
            ready = READY.search(self.stdout())
            if ready:
                self.port, self.keys = int(ready.group(1)), int(ready.group(2))
                return self
            if self.process.poll() is not None:
                self.returncode = self.process.returncode
                raise StandinError(f'the stand-in with {self.config} exited with code {self.returncode}: {self.stderr().strip()}')
            if time.monotonic() > deadline:
                self.stop()
                raise StandinError(f'the stand-in with {self.config} printed no READY line within {self.ready_timeout} s')
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (the clean path, through the server's shutdown hook), SIGKILL if that hangs; returns the exit code."""
        if self.process is None:
            return self.returncode
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.returncode = self.process.returncode
        self.process = None
        return self.returncode

    def request(self, line: str, timeout: float = 15.0) -> str:
        return request(self.address, line, timeout)

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != 'build':
        sys.stderr.write('usage: python3 standin_fixtures.py build OUTDIR\n')
        return 2
    try:
        sys.stdout.write(f'{build_archive(argv[1])}\n')
    except StandinError as exc:
        sys.stderr.write(f'error: {exc}\n')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
