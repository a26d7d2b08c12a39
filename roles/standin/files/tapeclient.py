# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A pretend tape drive for the stand-in EKM: writes and reads AES-256-GCM "cartridges".

A cartridge file is one header line of JSON and the ciphertext:

    {"alias": "...", "drive": "...", "format": "tapecrypt-cartridge", "nonce": "<hex>",
     "sha256": "<hex of the plaintext>", "version": 1}\\n<AES-256-GCM ciphertext and tag>

The header line (without its newline) is the associated data, so a header changed after
the write fails the tag check just as a wrong key does. Reading a cartridge back through
another server proves that server holds the very same key under the same alias: the GCM
tag cannot verify with any other key.

Usable as a module (write_cartridge, read_cartridge, ping, add_drive) and as a command:

    python3 tapeclient.py write --server HOST:PORT --drive SERIAL [--volser V] [--wwn HEX16] FILE [--size N]
    python3 tapeclient.py read  --server HOST:PORT --drive SERIAL [--wwn HEX16] FILE
    python3 tapeclient.py ping  --server HOST:PORT
    python3 tapeclient.py adddrive --server HOST:PORT --drive SERIAL

Each prints one line, on stdout when it succeeds (exit 0), on stderr when not (exit 1).

Like a real drive, a request may name the cartridge (its VolSer, up to 16 letters and digits) and
the drive's WWN (16 hex digits); the server records both in its metadata (key usage) file. A
cartridge written with a VolSer keeps it in its header, and a read sends it again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import sys
import tempfile

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = 'tapecrypt-cartridge'
VERSION = 1
DEFAULT_SIZE = 64 * 1024
TIMEOUT = 15.0
_MAX_HEADER = 4096
_KEY_REPLY = re.compile(r'OK (\S+) ([0-9a-f]{64})')
_VOLSER = re.compile(r'[A-Za-z0-9]{1,16}')
_WWN = re.compile(r'[0-9A-Fa-f]{16}')


class TapeError(Exception):
    """A cartridge could not be written or read; the message says which, and why."""


def parse_server(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6ADDR]:PORT`` to a (host, port) tuple."""
    host, sep, port = text.rpartition(':')
    if not sep or not host or not port.isdigit():
        raise TapeError(f'server must be HOST:PORT, not {text!r}')
    return host.strip('[]'), int(port)


def _name(server: tuple[str, int]) -> str:
    return f'{server[0]}:{server[1]}'


def request(server: tuple[str, int], line: str, timeout: float = TIMEOUT) -> str:
    """Sends one request line and returns the reply line (without its newline)."""
    try:
        with socket.create_connection(server, timeout=timeout) as sock:
            sock.sendall(line.encode('utf-8') + b'\n')
            reply = b''
            while not reply.endswith(b'\n'):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError as exc:
        raise TapeError(f'key server {_name(server)} cannot be reached: {exc}') from exc
    if not reply.endswith(b'\n'):
        raise TapeError(f'key server {_name(server)} closed the connection without a complete reply')
    return reply[:-1].decode('utf-8')


def _key(server: tuple[str, int], line: str, what: str) -> tuple[str, bytes]:
    reply = request(server, line)
    match = _KEY_REPLY.fullmatch(reply)
    if not match:
        # An ERR reply names the problem and carries no key; anything else is not echoed, it might.
        detail = reply if reply.startswith('ERR ') else 'an unexpected reply'
        raise TapeError(f'key server {_name(server)} refused {what}: {detail}')
    return match.group(1), bytes.fromhex(match.group(2))


def ping(server: tuple[str, int]) -> str:
    reply = request(server, 'PING')
    if not reply.startswith('OK '):
        raise TapeError(f'key server {_name(server)} answered PING with: {reply}')
    return reply


def add_drive(server: tuple[str, int], drive: str) -> str:
    reply = request(server, f'ADDDRIVE {drive}')
    if not reply.startswith('OK '):
        raise TapeError(f'key server {_name(server)} did not add drive {drive}: {reply}')
    return reply


def _write_atomically(path: str, data: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(dir=directory, prefix='.cartridge.')
    try:
        with os.fdopen(fd, 'wb') as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _tape_words(volser: str | None, wwn: str | None) -> str:
    """The optional VolSer and WWN words of a key request (a WWN needs a VolSer before it)."""
    if volser is not None and not _VOLSER.fullmatch(volser):
        raise TapeError(f'a VolSer is 1 to 16 letters and digits, not {volser!r}')
    if wwn is not None and not _WWN.fullmatch(wwn):
        raise TapeError(f'a WWN is 16 hex digits, not {wwn!r}')
    if wwn is not None and volser is None:
        raise TapeError('a WWN is sent after a VolSer: give both')
    return ''.join(f' {word}' for word in (volser, wwn) if word is not None)


def write_cartridge(server: tuple[str, int], drive: str, path: str, payload: bytes | None = None,
                    volser: str | None = None, wwn: str | None = None) -> dict:
    """Asks the server for a write key (GETKEY) and writes an encrypted cartridge file.

    Returns ``{'alias', 'path', 'sha256'}``; ``sha256`` is the plaintext's digest.
    """
    if payload is None:
        payload = os.urandom(DEFAULT_SIZE)
    alias, key = _key(server, f'GETKEY {drive}{_tape_words(volser, wwn)}', f'a write key for drive {drive}')
    digest = hashlib.sha256(payload).hexdigest()
    nonce = os.urandom(12)
    fields = {'format': FORMAT, 'version': VERSION, 'alias': alias, 'drive': drive, 'nonce': nonce.hex(), 'sha256': digest}
    if volser is not None:
        fields['volser'] = volser
    header = json.dumps(fields, sort_keys=True, separators=(',', ':')).encode('utf-8')
    ciphertext = AESGCM(key).encrypt(nonce, payload, header)
    _write_atomically(path, header + b'\n' + ciphertext)
    return {'alias': alias, 'path': path, 'sha256': digest}


def read_header(path: str) -> tuple[dict, bytes, bytes]:
    """The parsed header, the header bytes (the associated data) and the ciphertext."""
    try:
        with open(path, 'rb') as cartridge:
            data = cartridge.read()
    except OSError as exc:
        raise TapeError(f'cannot read cartridge {path}: {exc}') from exc
    header, sep, ciphertext = data.partition(b'\n')
    if not sep or len(header) > _MAX_HEADER:
        raise TapeError(f'{path} is not a cartridge: no header line')
    try:
        meta = json.loads(header)
    except ValueError as exc:
        raise TapeError(f'{path} is not a cartridge: header is not JSON ({exc})') from exc
    if not isinstance(meta, dict) or meta.get('format') != FORMAT or meta.get('version') != VERSION:
        raise TapeError(f'{path} is not a {FORMAT} version {VERSION} cartridge')
    for field in ('alias', 'drive', 'nonce', 'sha256'):
        if not isinstance(meta.get(field), str):
            raise TapeError(f'cartridge {path}: header field {field!r} is missing')
    return meta, header, ciphertext


def read_cartridge(server: tuple[str, int], drive: str, path: str, wwn: str | None = None) -> dict:
    """Reads a cartridge back with the key the server returns for its alias (KEY).

    Returns ``{'alias', 'ok': True, 'size'}``; raises TapeError naming the alias and the
    server when the key is missing or is not the key the cartridge was written with.
    """
    meta, header, ciphertext = read_header(path)
    alias = meta['alias']
    volser = meta.get('volser') if isinstance(meta.get('volser'), str) else None
    if wwn is not None and volser is None:
        volser = 'UNKNOWN'
    words = _tape_words(volser, wwn)
    got_alias, key = _key(server, f'KEY {drive} {alias}{words}', f'the key {alias} for cartridge {path}')
    if got_alias != alias.lower():
        raise TapeError(f'key server {_name(server)} returned alias {got_alias} when asked for {alias}')
    try:
        payload = AESGCM(key).decrypt(bytes.fromhex(meta['nonce']), ciphertext, header)
    except InvalidTag as exc:
        raise TapeError(f'cartridge {path}: the key {alias} from key server {_name(server)} does not decrypt it '
                        f'(GCM tag mismatch): that server holds a different key under the same alias') from exc
    except ValueError as exc:
        raise TapeError(f'cartridge {path} is damaged: {exc}') from exc
    if hashlib.sha256(payload).hexdigest() != meta['sha256']:
        raise TapeError(f'cartridge {path}: decrypted with key {alias} from {_name(server)} but the payload digest differs')
    return {'alias': alias, 'ok': True, 'size': len(payload)}


class _Parser(argparse.ArgumentParser):
    """Usage errors also end in one line and exit code 1, like every other failure."""

    def error(self, message):
        sys.stderr.write(f'error: {message}\n')
        sys.exit(1)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog='tapeclient.py', description='A pretend tape drive for the stand-in EKM.')
    commands = parser.add_subparsers(dest='command', required=True)
    for name in ('write', 'read', 'ping', 'adddrive'):
        sub = commands.add_parser(name)
        sub.add_argument('--server', required=True, help='HOST:PORT of the stand-in EKM')
        if name != 'ping':
            sub.add_argument('--drive', required=True, help='drive serial number')
        if name in ('write', 'read'):
            sub.add_argument('file', help='cartridge file')
            sub.add_argument('--wwn', help="the drive's WWN, 16 hex digits (needs a VolSer)")
        if name == 'write':
            sub.add_argument('--volser', help="the cartridge's volume serial, recorded in its header")
        if name == 'write':
            sub.add_argument('--size', type=int, default=DEFAULT_SIZE, help='random payload size in bytes')
    args = parser.parse_args(argv)
    try:
        server = parse_server(args.server)
        if args.command == 'ping':
            line = ping(server)
        elif args.command == 'adddrive':
            line = add_drive(server, args.drive)
        elif args.command == 'write':
            if args.size < 0:
                raise TapeError('--size must not be negative')
            result = write_cartridge(server, args.drive, args.file, os.urandom(args.size), args.volser, args.wwn)
            line = f"written {result['path']} alias={result['alias']} sha256={result['sha256']}"
        else:
            result = read_cartridge(server, args.drive, args.file, args.wwn)
            line = f"read {args.file} alias={result['alias']} size={result['size']} ok"
    except TapeError as exc:
        sys.stderr.write(f'error: {exc}\n')
        return 1
    sys.stdout.write(line + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
