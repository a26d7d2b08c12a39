# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real JDK's Properties.load(InputStream) is the judge of what PropertiesFile reads and writes."""
from __future__ import annotations

import os

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils._properties import PropertiesFile
from ansible_collections.tapecrypt.ekm.tests.interop.conftest import JAVA_SOURCES, run_java_tool
from ansible_collections.tapecrypt.ekm.tests.unit.plugins.module_utils.test_properties import EKM_SAMPLE, EKM_VALUES, crlf


def _unhex(text):
    return b''.join(bytes.fromhex(text[i:i + 4]) for i in range(0, len(text), 4)).decode('utf-16-be', 'surrogatepass')


@pytest.fixture(scope='module')
def java_load(jdk, tmp_path_factory):
    """Return a function that loads files with the JDK and returns one dict per file."""
    build = str(tmp_path_factory.mktemp('java-loader'))
    run_java_tool([jdk['javac'], '-d', build, os.path.join(JAVA_SOURCES, 'LoadProperties.java')])

    def load(*paths):
        out = run_java_tool([jdk['java'], '-cp', build, 'LoadProperties'] + [str(p) for p in paths]).stdout
        results = []
        for line in out.splitlines():
            fields = line.split(' ')
            if fields[0] == 'FILE':
                results.append({})
            else:
                results[-1][_unhex(fields[1])] = _unhex(fields[2] if len(fields) > 2 else '')
        assert len(results) == len(paths)
        return results
    return load


TRICKY = {
    'key with spaces': 'value with spaces',
    'key=with=equals': 'a=b',
    'key:with:colons': 'host:3801',
    '#not-a-comment': '!not a comment either',
    '!bang': '#hash',
    ' leading space key': '   leading spaces value',
    'trailing space key ': 'trailing spaces value   ',
    'euro\u20ac': 'price \u20ac 5',
    'emoji': '\U0001F600 outside the BMP',
    'latin1': 'caf\xe9 na\xefve',
    'back\\slash': 'C:\\ekm\\audit\\',
    'ends in backslash': '\\',
    'controls': 'tab\tnewline\ncr\rformfeed\f',
    '': 'empty key',
    'empty value': '',
    'config.keystore.password': 'p@ss w0rd=:#!\\',
}


def test_java_reads_back_what_we_write(tmp_path, java_load):
    props = PropertiesFile.parse(EKM_SAMPLE)
    for key, value in TRICKY.items():
        assert props.set(key, value) is True
    # Change existing lines too, including the continued one and the one without separator.
    props.set('symmetricKeySet', ' DCA001-1FF ')
    props.set('no.separator', '=starts with a separator')
    props.set('Audit.handler.file.name', ':colon first')
    props.remove('latin1.value')
    expected = dict(EKM_VALUES, **TRICKY)
    expected.update({'symmetricKeySet': ' DCA001-1FF ', 'no.separator': '=starts with a separator',
                     'Audit.handler.file.name': ':colon first'})
    del expected['latin1.value']
    written = tmp_path / 'KeyManagerConfig.properties'
    written.write_bytes(props.dump())
    assert props.dump().isascii()
    (java_view,) = java_load(written)
    assert java_view == expected
    assert PropertiesFile.parse(props.dump()).as_dict() == expected


JAVA_EDGE_CASES = [
    EKM_SAMPLE,
    crlf(EKM_SAMPLE),
    b'a = b\\\n\n  c=d\n',              # a blank line ends a continued value
    b'a=\\\n   \\\n  b\n',              # a continuation of a continuation
    b'a\\\n b\n',                        # the continuation line's blanks are dropped, joining key parts
    b'\\\n\nx=1\n',                      # a lone backslash and a blank line: nothing at all
    b'\\\n',                             # a lone backslash at the end: one empty key
    b'\\\r\n',                           # ... unless the line ends in CRLF
    b'k=v\\',                            # a dangling backslash at the very end
    b'k\\\r\n  =v\r\r\n',                # mixed line endings
    b'  \t\f#comment\n!x\\\ny=1\n',      # a comment never continues
    b'k  :  =v\n',                       # only the first separator counts
    b'k\\ \\:=\\u0041\\u00e9\\uD83D\\uDE00\n',
    b'a=\\q\\"\\\'\n',                  # unknown escapes stand for the character itself
    b'k=\xe9\xff\x80\n',                 # bytes are ISO-8859-1
    b'=no key\n:also no key\n',
]


def test_our_reading_matches_java_on_edge_cases(tmp_path, java_load):
    paths = []
    for number, data in enumerate(JAVA_EDGE_CASES):
        path = tmp_path / ('case%d.properties' % number)
        path.write_bytes(data)
        paths.append(path)
    for data, java_view in zip(JAVA_EDGE_CASES, java_load(*paths)):
        props = PropertiesFile.parse(data)
        assert props.dump() == data
        assert props.as_dict() == java_view, data
