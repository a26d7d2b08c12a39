# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The stand-in EKM and the tape-drive client, against the real JDK (java, javac, keytool).

Without a JDK these tests fail rather than skip: the collection's failover story is proven here.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SOURCES = HERE.parent.parent / 'roles' / 'standin' / 'files'  # the tape client ships in the standin role
for _path in (HERE, SOURCES):
    if str(_path) not in sys.path:  # also under --import-mode=importlib
        sys.path.insert(0, str(_path))

import standin_fixtures as sf  # noqa: E402  pylint: disable=wrong-import-position
import tapeclient  # noqa: E402  pylint: disable=wrong-import-position

PASSWORD = 'standin-store-pw'
ALIASES = sf.sequential_aliases('DCA', 1, 4)
A1, A2, A3, A4 = ALIASES
KEY_SET = 'DCA001-003'


# ----------------------------------------------------------------------------------------- fixtures

# archive, home and start: conftest.py (shared with test_standin_ibm.py).

@pytest.fixture(scope='session')
def keystores(tmp_path_factory):
    """Keystores made once by the real keytool; tests copy them. Each keytool run is a JVM, so in parallel."""
    sf.require_jdk()
    root = tmp_path_factory.mktemp('keystores')
    jobs = {
        'three': (ALIASES[:3], 'AES', 256),
        'independent': ([A1], 'AES', 256),  # the same alias, generated separately: "cannot be merged"
        'aes128': ([A1], 'AES', 128),
        'des': ([A1], 'DES', 56),
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(sf.make_keystore, root / f'{name}.jck', PASSWORD, aliases, keyalg=alg, keysize=size)
                   for name, (aliases, alg, size) in jobs.items()}
        paths = {name: future.result() for name, future in futures.items()}
    # "four" extends "three": the same first three keys, as add_keys.yml grows a keystore.
    paths['four'] = root / 'four.jck'
    shutil.copyfile(paths['three'], paths['four'])
    sf.make_keystore(paths['four'], PASSWORD, [A4])
    return paths


@pytest.fixture
def site(tmp_path, keystores):
    """Makes a server directory: a private copy of a keystore and KeyManagerConfig.properties beside it."""
    def make(name='primary', keystore='three', key_set=KEY_SET, overrides=None, **kwargs):
        directory = tmp_path / name
        (directory / 'keystore').mkdir(parents=True)
        shutil.copyfile(keystores[keystore], directory / 'keystore' / 'EKMKeys.jck')
        return sf.write_site_config(directory, 'keystore/EKMKeys.jck', PASSWORD, key_set, overrides, **kwargs)
    return make


def served_keys_hex(server, aliases):
    """The hex keys the server hands out, to check that no file it writes contains them."""
    return [server.request(f'KEY D1 {alias}').split()[2] for alias in aliases]


# ----------------------------------------------------------------------------------------- package

def test_archive_layout_checksum_and_java_11_bytecode(archive):
    with tarfile.open(archive) as tar:
        files = sorted(m.name for m in tar.getmembers() if m.isfile())
        jar_bytes = tar.extractfile('ekm-standin-0.1.0/lib/ekm-standin.jar').read()
    assert files == ['ekm-standin-0.1.0/README.txt', 'ekm-standin-0.1.0/lib/ekm-standin.jar']
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert Path(f'{archive}.sha256').read_text(encoding='ascii') == f'{digest}  ekm-standin-0.1.0.tar.gz\n'
    with zipfile.ZipFile(io.BytesIO(jar_bytes)) as jar:
        main = jar.read('tapecrypt/standin/EkmStandin.class')
    assert main[:4] == b'\xca\xfe\xba\xbe'
    assert int.from_bytes(main[6:8], 'big') == 55, 'the jar must run on Java 11 (class file major version 55)'


def test_build_skips_work_when_archive_is_up_to_date(archive):
    before = archive.stat().st_mtime_ns
    assert sf.build_archive(archive.parent) == archive
    assert archive.stat().st_mtime_ns == before


def test_fixture_cli_build_prints_archive_path(archive):
    result = subprocess.run([sys.executable, str(HERE / 'standin_fixtures.py'), 'build', str(archive.parent)],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout) == (0, f'{archive}\n')


# ----------------------------------------------------------------------------------------- serving

def test_ping_unknown_command_and_missing_alias(site, start):
    server = start(site())
    assert server.keys == 3
    assert server.request('PING') == 'OK tapecrypt-standin keys=3'
    assert server.request('FORMAT TAPE') == 'ERR unknown command'
    assert server.request('') == 'ERR unknown command'
    assert server.request('KEY D1 dca0000000000000000ff') == 'ERR no key dca0000000000000000ff'
    # Any AES-256 key of the keystore serves a read, in any case of the alias, like JCEKS lookups.
    assert server.request(f'KEY D1 {A2.upper()}').startswith(f'OK {A2} ')


def test_round_robin_writes_read_back_and_runtime_files(site, start, tmp_path):
    config = site()
    directory = config.parent
    server = start(config)
    table_at_start = (directory / 'filedrive.table').read_bytes()
    assert table_at_start.startswith(b'TCSDRVTB'), 'the drive table is created at start'
    assert 'lastUsed' not in (directory / 'KeyGroups.xml').read_text()

    written = [tapeclient.write_cartridge(server.address, 'D1', str(tmp_path / f'c{i}.tape'), f'payload {i}'.encode())
               for i in range(4)]
    assert [w['alias'] for w in written] == [A1, A2, A3, A1], '3 keys, 4 writes: round-robin wraps on the 4th'
    for w in written:
        assert tapeclient.read_cartridge(server.address, 'D1', w['path']) == {'alias': w['alias'], 'ok': True, 'size': 9}

    assert f'<KeyGroup id="default" lastUsed="{A1}"/>' in (directory / 'KeyGroups.xml').read_text()
    table = (directory / 'filedrive.table').read_bytes()
    assert table != table_at_start and b'D1' in table
    metadata = (directory / 'metadata' / 'ekm-metadata.xml').read_text().splitlines()
    assert [re.search(r'<KeyAlias1>(\w+)</KeyAlias1>', line).group(1) for line in metadata] == [A1, A2, A3, A1] * 2
    keys = served_keys_hex(server, [A1, A2, A3])
    assert server.stop() == 143, 'SIGTERM ends the JVM through its shutdown hook'
    assert 'EKM-STANDIN STOPPED' in server.stdout() and server.stderr() == ''

    (audit,) = (directory / 'audit').iterdir()
    assert re.fullmatch(r'ekm\.log\.\d{13}', audit.name)
    events = re.findall(r'^(\w+):\[timestamp=\S+ message=([^=\n]*?)(?: \w+=|\]|\n)', audit.read_text(), re.M)
    assert events[0] == ('runtime', 'Server started') and events[-1] == ('runtime', 'Received and processed stopekm command')
    assert events.count(('runtime', 'Message exchange processed successfully')) == 11
    for path in (audit, directory / 'metadata' / 'ekm-metadata.xml', directory / 'KeyGroups.xml', directory / 'filedrive.table'):
        content = path.read_bytes()
        assert not any(key.encode() in content or bytes.fromhex(key) in content for key in keys), f'key material in {path}'


def test_restart_continues_after_recorded_alias_and_keeps_added_drives(site, start, tmp_path):
    config = site(accept_unknown_drives=False)
    server = start(config)
    assert server.request('ADDDRIVE D7') == 'OK drive added D7'
    assert server.request('ADDDRIVE D7') == 'OK drive known D7'
    first = [tapeclient.write_cartridge(server.address, 'D7', str(tmp_path / f'a{i}.tape'))['alias'] for i in range(2)]
    assert first == [A1, A2]
    server.stop()

    server = start(config)
    later = [tapeclient.write_cartridge(server.address, 'D7', str(tmp_path / f'b{i}.tape'))['alias'] for i in range(2)]
    assert later == [A3, A1], 'after a restart, round-robin resumes after the alias recorded in KeyGroups.xml'
    assert server.request('GETKEY D8') == 'ERR unknown drive D8'


def test_keygroups_written_by_hand_is_read_at_start(site, start, tmp_path):
    config = site()
    (config.parent / 'KeyGroups.xml').write_text(
        f'<?xml version="1.0"?>\n<KeyGroups><KeyGroup id="default" lastUsed="{A2}"/><KeyGroup id="tapes2" lastUsed="x"/></KeyGroups>\n')
    server = start(config)
    assert tapeclient.write_cartridge(server.address, 'D1', str(tmp_path / 'c.tape'))['alias'] == A3
    text = (config.parent / 'KeyGroups.xml').read_text()
    assert f'<KeyGroup id="default" lastUsed="{A3}"/>' in text and '<KeyGroup id="tapes2" lastUsed="x"/>' in text


def test_unknown_drive_refused_when_not_accepted(site, start, tmp_path):
    config = site(accept_unknown_drives=False)
    server = start(config)
    table = (config.parent / 'filedrive.table').read_bytes()
    assert server.request('GETKEY HU12345678') == 'ERR unknown drive HU12345678'
    assert server.request(f'KEY HU12345678 {A1}') == 'ERR unknown drive HU12345678'
    with pytest.raises(tapeclient.TapeError, match=r'refused a write key for drive HU12345678: ERR unknown drive HU12345678'):
        tapeclient.write_cartridge(server.address, 'HU12345678', str(tmp_path / 'c.tape'))
    assert not (tmp_path / 'c.tape').exists()
    assert (config.parent / 'filedrive.table').read_bytes() == table
    assert 'lastUsed' not in (config.parent / 'KeyGroups.xml').read_text(), 'a refused request uses no key'


def test_concurrent_writes_share_keys_evenly(site, start):
    server = start(site())
    with ThreadPoolExecutor(max_workers=6) as pool:
        replies = list(pool.map(lambda i: server.request(f'GETKEY D{i % 2}'), range(9)))
    aliases = sorted(reply.split()[1] for reply in replies)
    assert aliases == sorted([A1, A2, A3] * 3), replies


# ----------------------------------------------------------------------------------------- failover

@pytest.fixture
def cartridges_from_primary(site, start, tmp_path):
    """Three cartridges written through a primary that is then stopped."""
    primary = start(site('primary'))
    paths = [tapeclient.write_cartridge(primary.address, 'D1', str(tmp_path / f'tape{i}.tape'))['path'] for i in range(3)]
    primary.stop()
    return paths


def test_redundant_with_copied_keystore_reads_primary_cartridges(cartridges_from_primary, site, start, tmp_path):
    config = site('redundant')
    shutil.copyfile(tmp_path / 'primary' / 'keystore' / 'EKMKeys.jck', config.parent / 'keystore' / 'EKMKeys.jck')
    redundant = start(config)
    results = [tapeclient.read_cartridge(redundant.address, 'D1', path) for path in cartridges_from_primary]
    assert [r['alias'] for r in results] == [A1, A2, A3] and all(r['ok'] for r in results)


def test_independently_generated_keystore_cannot_read(cartridges_from_primary, site, start):
    other = start(site('independent', keystore='independent', key_set=A1))
    assert other.request(f'KEY D1 {A1}').startswith(f'OK {A1} '), 'the same alias exists there'
    with pytest.raises(tapeclient.TapeError) as failure:
        tapeclient.read_cartridge(other.address, 'D1', cartridges_from_primary[0])
    message = str(failure.value)
    assert 'GCM tag mismatch' in message and A1 in message and f'127.0.0.1:{other.port}' in message


# ----------------------------------------------------------------------------------------- refresh

def test_refresh_picks_up_a_keystore_with_more_keys(site, start, tmp_path, keystores):
    config = site()
    server = start(config)
    for i in range(3):
        tapeclient.write_cartridge(server.address, 'D1', str(tmp_path / f'c{i}.tape'))
    assert server.request(f'KEY D1 {A4}') == f'ERR no key {A4}'

    # A config naming keys the keystore does not hold yet: refused, the old keys keep serving.
    sf.write_site_config(config.parent, 'keystore/EKMKeys.jck', PASSWORD, 'DCA001-004')
    reply = server.request('REFRESH')
    assert reply.startswith('ERR refresh failed, still serving the previous keys: 1 alias(es) of symmetricKeySet are absent'), reply
    assert reply.endswith(f': {A4}')
    assert server.request('PING') == 'OK tapecrypt-standin keys=3'

    staged = config.parent / 'keystore' / 'EKMKeys.jck.new'
    shutil.copyfile(keystores['four'], staged)
    os.replace(staged, config.parent / 'keystore' / 'EKMKeys.jck')
    assert server.request('REFRESH') == 'OK refreshed keys=4'
    assert server.request('PING') == 'OK tapecrypt-standin keys=4'
    assert server.request(f'KEY D1 {A4}').startswith(f'OK {A4} ')
    assert tapeclient.write_cartridge(server.address, 'D1', str(tmp_path / 'c3.tape'))['alias'] == A4
    for i in range(4):
        assert tapeclient.read_cartridge(server.address, 'D1', str(tmp_path / f'c{i}.tape'))['ok']


# ----------------------------------------------------------------------------------------- refusing to start

def _occupied_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    sock.listen(1)
    return sock


def _case(site, tmp_path, name, cleanup):  # pylint: disable=too-many-return-statements,too-many-branches
    """Builds one broken site; returns its config path and the fragments the FATAL line must contain."""
    if name == 'missing config':
        return tmp_path / 'nowhere' / 'KeyManagerConfig.properties', ['configuration file not found', str(tmp_path / 'nowhere')]
    if name == 'config is a directory':
        (tmp_path / 'cfgdir').mkdir()
        return tmp_path / 'cfgdir', ['configuration file is not a regular file', str(tmp_path / 'cfgdir')]
    if name == 'unparsable config':
        config = site()
        config.write_text(config.read_text() + 'broken=\\uZZZZ\n')
        return config, ['cannot read configuration file', str(config), 'Malformed']
    if name == 'missing keystore':
        config = site(overrides={'config.keystore.file': 'FILE:keystore/absent.jck'})
        return config, ['keystore not found', str(config.parent / 'keystore' / 'absent.jck')]
    if name == 'keystore is not jceks':
        config = site()
        (config.parent / 'keystore' / 'EKMKeys.jck').write_bytes(b'PK\x03\x04 not a keystore')
        return config, ['cannot read keystore', 'as JCEKS', str(config.parent / 'keystore' / 'EKMKeys.jck')]
    if name == 'wrong password':
        config = site(overrides={'config.keystore.password': 'not-the-password'})
        return config, ['wrong keystore password', str(config.parent / 'keystore' / 'EKMKeys.jck')]
    if name == 'no password':
        return site(overrides={'config.keystore.password': None}), ['config.keystore.password is not set']
    if name == 'absent aliases':
        config = site(key_set='DCA001-00F')
        named = ', '.join(sf.sequential_aliases('DCA', 4, 13))
        return config, [f'12 alias(es) of symmetricKeySet are absent from keystore {config.parent / "keystore" / "EKMKeys.jck"}: '
                        f'{named} and 2 more']
    if name == 'AES-128 key':
        return site(keystore='aes128', key_set=A1), ['1 alias(es) of symmetricKeySet', 'are not 256-bit AES secret keys',
                                                     f'{A1} (AES, 128 bits)']
    if name == 'DES key':
        return site(keystore='des', key_set=A1), [f'{A1} (DES, 64 bits)']
    if name == 'empty symmetricKeySet':
        return site(key_set=' '), ['symmetricKeySet is empty']
    if name == 'reversed range':
        return site(key_set='DCA003-001'), ["symmetricKeySet range 'DCA003-001' has its first counter after its last"]
    if name == 'keystore type':
        return site(overrides={'config.keystore.type': 'PKCS12'}), ["config.keystore.type is 'PKCS12'", 'jceks']
    if name == 'no TCP port':
        return site(overrides={'TransportListener.tcp.port': None}), ['TCP port number must be specified in configuration file']
    if name == 'bad TCP port':
        return site(overrides={'TransportListener.tcp.port': '70000'}), ['Invalid TCP port number in configuration file',
                                                                         'TransportListener.tcp.port=70000']
    if name == 'no SSL port':
        return site(overrides={'TransportListener.ssl.port': None}), ['SSL port number must be specified in configuration file']
    if name == 'port in use':
        holder = _occupied_port()
        cleanup.append(holder)  # kept open until the server has tried to listen
        return site(port=holder.getsockname()[1]), ['Could not start server', f'127.0.0.1:{holder.getsockname()[1]}']
    if name == 'non-loopback address':
        return site(overrides={'standin.listen.address': '0.0.0.0'}), ["standin.listen.address '0.0.0.0' is not a loopback address"]
    if name == 'malformed KeyGroups.xml':
        config = site()
        (config.parent / 'KeyGroups.xml').write_text('<KeyGroups><KeyGroup id="default"')
        return config, ['malformed KeyGroups.xml', str(config.parent / 'KeyGroups.xml')]
    if name == 'KeyGroups.xml with external entity':
        config = site()
        secret = tmp_path / 'secret.txt'
        secret.write_text('TOP-SECRET-CONTENT')
        (config.parent / 'KeyGroups.xml').write_text(
            f'<?xml version="1.0"?>\n<!DOCTYPE g [<!ENTITY x SYSTEM "file://{secret}">]>\n'
            '<KeyGroups><KeyGroup id="default" lastUsed="&x;"/></KeyGroups>\n')
        return config, ['malformed KeyGroups.xml', 'DOCTYPE']
    if name == 'KeyGroups.xml of another schema':
        config = site()
        (config.parent / 'KeyGroups.xml').write_text('<keygroups><group/></keygroups>')
        return config, ['malformed KeyGroups.xml', 'root element is <keygroups>, expected <KeyGroups>']
    if name == 'damaged drive table':
        config = site()
        (config.parent / 'filedrive.table').write_bytes(b'\xac\xed\x00\x05 java serialized, not ours')
        return config, ['drive table', 'is not a stand-in drive table']
    if name == 'no metadata file':
        return site(overrides={'Audit.metadata.file.name': None}), ['Audit.metadata.file.name is not set']
    if name == 'audit directory cannot be created':
        config = site(overrides={'Audit.handler.file.directory': 'blocker/audit'})
        (config.parent / 'blocker').write_text('a file where a directory should go')
        return config, ['cannot create audit directory', str(config.parent / 'blocker' / 'audit')]
    raise AssertionError(name)


FATAL_CASES = [
    'missing config', 'config is a directory', 'unparsable config', 'missing keystore', 'keystore is not jceks', 'wrong password',
    'no password', 'absent aliases', 'AES-128 key', 'DES key', 'empty symmetricKeySet', 'reversed range', 'keystore type',
    'no TCP port', 'bad TCP port', 'no SSL port', 'port in use', 'non-loopback address', 'malformed KeyGroups.xml',
    'KeyGroups.xml with external entity', 'KeyGroups.xml of another schema', 'damaged drive table', 'no metadata file',
    'audit directory cannot be created',
]


@pytest.mark.parametrize('name', FATAL_CASES)
def test_refuses_to_start(name, site, tmp_path, home):
    cleanup = []
    try:
        config, fragments = _case(site, tmp_path, name, cleanup)
        result = sf.run_to_exit(home, config)
    finally:
        for sock in cleanup:
            sock.close()
    lines = result.stderr.splitlines()
    assert result.returncode == sf.FATAL_EXIT, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith('EKM-STANDIN FATAL: '), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert 'READY' not in result.stdout
    assert 'TOP-SECRET-CONTENT' not in result.stderr


# ----------------------------------------------------------------------------------------- client CLI

def _cli(*args):
    result = subprocess.run([sys.executable, str(SOURCES / 'tapeclient.py'), *args], capture_output=True, text=True, check=False)
    return result.returncode, result.stdout, result.stderr


def test_tapeclient_cli(site, start, tmp_path):
    server = start(site())
    where = f'127.0.0.1:{server.port}'
    tape = str(tmp_path / 'cli.tape')
    assert _cli('ping', '--server', where) == (0, 'OK tapecrypt-standin keys=3\n', '')
    code, out, err = _cli('write', '--server', where, '--drive', 'D1', tape, '--size', '1000')
    assert (code, err) == (0, '') and re.fullmatch(rf'written {re.escape(tape)} alias={A1} sha256=[0-9a-f]{{64}}\n', out)
    assert _cli('read', '--server', where, '--drive', 'D1', tape) == (0, f'read {tape} alias={A1} size=1000 ok\n', '')

    with open(tape, 'r+b') as cartridge:  # one flipped ciphertext bit: the tag check must catch it
        cartridge.seek(-1, os.SEEK_END)
        last = cartridge.read(1)
        cartridge.seek(-1, os.SEEK_END)
        cartridge.write(bytes([last[0] ^ 1]))
    code, out, err = _cli('read', '--server', where, '--drive', 'D1', tape)
    assert (code, out) == (1, '') and err.count('\n') == 1 and 'GCM tag mismatch' in err
    server.stop()
    code, out, err = _cli('ping', '--server', where)
    assert (code, out) == (1, '') and err.startswith(f'error: key server {where} cannot be reached')
    assert _cli('ping', '--server', 'no-port')[0] == 1


# ----------------------------------------------------------------------------------------- audit and metadata formats

def test_metadata_records_carry_volser_and_wwn_and_rotate_at_the_size_limit(site, start, tmp_path):
    from ansible_collections.tapecrypt.ekm.plugins.module_utils._ekm_records import read_audit, read_metadata
    config = site(overrides={'Audit.metadata.file.size': 1, 'Audit.handler.file.size': 1})
    server = start(config)
    wwn = '57574E414D453030'
    written = [tapeclient.write_cartridge(server.address, 'D1', str(tmp_path / f'v{i}.tape'), b'x', volser=f'VOL{i:03}', wwn=wwn)
               for i in range(10)]
    assert tapeclient.read_cartridge(server.address, 'D1', written[9]['path'], wwn=wwn)['ok']
    assert server.request('GETKEY D1 bad-volser') == 'ERR bad volser'
    assert server.request(f'KEY D1 {A1} VOL1 nothex') == 'ERR bad wwn'
    assert server.request('GETKEY D1 V1 W1 extra') == 'ERR usage: GETKEY <drive-serial> [<volser> [<wwn>]]'

    current = config.parent / 'metadata' / 'ekm-metadata.xml'
    previous = config.parent / 'metadata' / 'ekm-metadata.xml.1'
    assert current.stat().st_size <= 1024 and previous.stat().st_size <= 1024
    assert sorted(os.listdir(current.parent)) == ['ekm-metadata.xml', 'ekm-metadata.xml.1'], 'only current and previous'
    kept = read_metadata(str(current))['records']
    assert 0 < len(kept) < 11, 'eleven records do not fit in two 1 KB files: the oldest are gone, as with EKM'
    expected = [(f'VOL{i:03}', w['alias']) for i, w in enumerate(written)] + [('VOL009', written[9]['alias'])]
    assert [(r['volser'], r['key_alias_1']) for r in kept] == expected[-len(kept):]
    assert {r['wwn'] for r in kept} == {wwn} and {r['drive_serial'] for r in kept} == {'D1'}
    assert all(re.fullmatch(r'[0-9a-f]{16}', r['dki']) and r['key_alias_2'] == '' for r in kept)
    assert kept[-1]['dki'] == kept[-2]['dki'], 'the same alias has the same DKi'

    server.stop()
    audit_dir = config.parent / 'audit'
    assert len(os.listdir(audit_dir)) > 1, 'the audit log moved on to a new numbered file at its size limit'
    result = read_audit(str(audit_dir), 'ekm.log')
    assert result['unparsed_lines'] == 0
    kinds = [r['kind'] for r in result['records']]
    assert kinds.count('served') == 11 and kinds[-1] == 'stop'
    wrapped = [line for path in audit_dir.iterdir() for line in path.read_text().splitlines() if line.startswith('  ')]
    assert wrapped, 'long records go on over continuation lines indented two spaces'
    long_lines = [line for path in audit_dir.iterdir() for line in path.read_text().splitlines() if len(line) > 100]
    assert all(line.startswith('  ') and line.count('=') == 1 for line in long_lines), 'only a single long pair passes 100'
    served = [r for r in result['records'] if r['kind'] == 'served']
    assert [r['fields']['volser'] for r in served] == [f'VOL{i:03}' for i in range(10)] + ['VOL009']
    assert all(r['type'] == 'runtime' and r['fields']['action'] in ('write', 'read') for r in served)


def test_tapeclient_cli_sends_volser_and_wwn(site, start, tmp_path):
    config = site()
    server = start(config)
    where = f'127.0.0.1:{server.port}'
    tape = str(tmp_path / 'v.tape')
    code, out, err = _cli('write', '--server', where, '--drive', 'D1', '--volser', 'ABC123L6', '--wwn', '0123456789abcdef', tape)
    assert (code, err) == (0, ''), err
    assert _cli('read', '--server', where, '--drive', 'D1', '--wwn', '0123456789ABCDEF', tape)[0] == 0
    assert _cli('write', '--server', where, '--drive', 'D1', '--wwn', '0123456789abcdef', tape)[2] == \
        'error: a WWN is sent after a VolSer: give both\n'
    text = (config.parent / 'metadata' / 'ekm-metadata.xml').read_text()
    assert text.count('<VolSer>ABC123L6</VolSer>') == 2 and '<DriveWWN>0123456789ABCDEF</DriveWWN>' in text
