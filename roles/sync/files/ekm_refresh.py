# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ask the stand-in EKM to re-read its files: send REFRESH to its key port, print its answer.

Usage: ekm_refresh.py CONFIG ADDRESS PORT (PORT 0: TransportListener.tcp.port of CONFIG).
Exit status: 0 refreshed, 1 it answered with an error, 3 nothing answers (EKM does not run), 2 usage.
The stand-in's protocol is its own; the vendor's EKM is reloaded with a command of its own (see the sync role).
"""

import re
import socket
import sys


def config_port(path):
    port = None
    with open(path, encoding='latin-1') as handle:
        for line in handle:
            match = re.match(r'^[ \t\f]*TransportListener\.tcp\.port[ \t\f]*[=:]?[ \t\f]*([0-9]+)[ \t\f]*$', line.rstrip('\r\n'))
            if match:
                port = int(match.group(1))
    return port


def main(argv):
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[2])
        return 2
    port = int(argv[3]) or config_port(argv[1])
    if not port:
        print('no TransportListener.tcp.port in %s' % argv[1])
        return 1
    try:
        with socket.create_connection((argv[2], port), timeout=30) as sock:
            sock.sendall(b'REFRESH\n')
            reply = sock.makefile('r', encoding='utf-8').readline().strip()
    except ConnectionRefusedError:
        print('EKM does not answer on %s:%d' % (argv[2], port))
        return 3
    except OSError as exc:
        print('cannot reach EKM on %s:%d: %s' % (argv[2], port, exc))
        return 1
    print(reply)
    return 0 if reply.startswith('OK refreshed') else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
