# Copyright (c) 2026 tapecrypt.ekm contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

import pytest

from ansible_collections.tapecrypt.ekm.plugins.module_utils._properties import (
    MASK,
    PropertiesError,
    PropertiesFile,
    escape_key,
    escape_value,
    is_secret_key,
)

# An EKM-like file with every construct Properties.load() knows; the line numbers matter to some tests.
EKM_SAMPLE = (
    b'# KeyManagerConfig.properties written by hand\n'                      # 1
    b'! a bang comment, also ignored\n'                                     # 2
    b'\n'                                                                   # 3
    b'Audit.handler.file.size=2000\n'                                       # 4
    b'Audit.handler.file.name : ekm.log\n'                                  # 5
    b'TransportListener.tcp.port = 3801\n'                                  # 6
    b'   TransportListener.ssl.port\t443\n'                                 # 7
    b'config.keystore.file=FILE:/opt/ekm/keystore/EKMKeys.jck\n'            # 8
    b'symmetricKeySet = DCA001-1FF,\\\n'                                    # 9
    b'                   DCB001-0FF\n'                                      # 10
    b'my\\:odd\\=key\\ name=with escaped separators\n'                      # 11
    b'config.keystore.password=s3cr\\u00e9t\n'                              # 12
    b'drive.acceptUnknownDrives=false\n'                                    # 13
    b'   \t\n'                                                              # 14
    b'Audit.handler.file.directory=C:\\\\ekm\\\\audit\n'                    # 15
    b'latin1.value=caf\xe9\n'                                               # 16
    b'empty.value=\n'                                                       # 17
    b'no.separator\n'                                                       # 18
    b'  # an indented comment\n'                                            # 19
    b'tabs\\tand\\nnewlines=a\\tb\\nc\n'                                     # 20
)

EKM_VALUES = {
    'Audit.handler.file.size': '2000',
    'Audit.handler.file.name': 'ekm.log',
    'TransportListener.tcp.port': '3801',
    'TransportListener.ssl.port': '443',
    'config.keystore.file': 'FILE:/opt/ekm/keystore/EKMKeys.jck',
    'symmetricKeySet': 'DCA001-1FF,DCB001-0FF',
    'my:odd=key name': 'with escaped separators',
    'config.keystore.password': 's3cr\xe9t',
    'drive.acceptUnknownDrives': 'false',
    'Audit.handler.file.directory': 'C:\\ekm\\audit',
    'latin1.value': 'caf\xe9',
    'empty.value': '',
    'no.separator': '',
    'tabs\tand\nnewlines': 'a\tb\nc',
}


def crlf(data):
    return data.replace(b'\n', b'\r\n')


def lines_of(data):
    return data.splitlines(keepends=True)


@pytest.mark.parametrize('data', [EKM_SAMPLE, crlf(EKM_SAMPLE), EKM_SAMPLE.replace(b'\n', b'\r'), EKM_SAMPLE[:-1], b'',
                                  b'\n', b'a', b'a\\', b'a=b\\\n', b'\\\r\n', b'#x\r\n\r\n  \r'])
def test_parse_dump_is_byte_identical(data):
    assert PropertiesFile.parse(data).dump() == data


@pytest.mark.parametrize('data', [EKM_SAMPLE, crlf(EKM_SAMPLE)])
def test_parse_reads_what_java_reads(data):
    props = PropertiesFile.parse(data)
    assert props.as_dict() == EKM_VALUES
    assert list(props.as_dict()) == list(EKM_VALUES)
    assert props.get('symmetricKeySet') == 'DCA001-1FF,DCB001-0FF'
    assert props.get('missing') is None


def test_last_occurrence_wins_and_duplicates_are_reported():
    props = PropertiesFile.parse(b'a=1\nb=2\n# c\na = 3\n')
    assert props.get('a') == '3'
    assert list(props.as_dict()) == ['a', 'b']
    assert props.duplicates('a') == [1, 4]
    assert props.duplicates('b') == []
    assert props.duplicates('zzz') == []


def test_set_existing_key_changes_only_its_value():
    props = PropertiesFile.parse(EKM_SAMPLE)
    assert props.set('TransportListener.tcp.port', '3802') is True
    after = lines_of(props.dump())
    before = lines_of(EKM_SAMPLE)
    assert after[5] == b'TransportListener.tcp.port = 3802\n'
    assert after[:5] + after[6:] == before[:5] + before[6:]
    assert props.get('TransportListener.tcp.port') == '3802'


@pytest.mark.parametrize('key, line', [
    ('Audit.handler.file.name', b'Audit.handler.file.name : new\\:value\n'),
    ('TransportListener.ssl.port', b'   TransportListener.ssl.port\tnew\\:value\n'),
    ('my:odd=key name', b'my\\:odd\\=key\\ name=new\\:value\n'),
    ('empty.value', b'empty.value=new\\:value\n'),
    ('no.separator', b'no.separator=new\\:value\n'),
])
def test_set_keeps_key_spelling_and_separator(key, line):
    props = PropertiesFile.parse(EKM_SAMPLE)
    assert props.set(key, 'new:value') is True
    assert line in lines_of(props.dump())
    assert props.get(key) == 'new:value'


def test_set_folds_a_continued_value_into_one_line():
    props = PropertiesFile.parse(EKM_SAMPLE)
    assert props.set('symmetricKeySet', 'DCA001-2FF') is True
    after = lines_of(props.dump())
    before = lines_of(EKM_SAMPLE)
    assert after[8] == b'symmetricKeySet = DCA001-2FF\n'
    assert after[:8] + after[9:] == before[:8] + before[10:]
    assert PropertiesFile.parse(props.dump()).get('symmetricKeySet') == 'DCA001-2FF'


def test_set_keeps_a_key_that_spans_lines():
    data = b'long\\\n    key = old\\\n  continued\nnext=1\n'
    props = PropertiesFile.parse(data)
    assert props.get('longkey') == 'oldcontinued'
    assert props.set('longkey', 'new') is True
    assert props.dump() == b'long\\\n    key = new\nnext=1\n'


def test_set_new_key_is_appended_with_the_files_line_ending():
    props = PropertiesFile.parse(crlf(EKM_SAMPLE))
    assert props.set('sync.timeinhours', '24') is True
    assert props.dump() == crlf(EKM_SAMPLE) + b'sync.timeinhours=24\r\n'


def test_set_new_key_ends_an_unterminated_last_line_first():
    props = PropertiesFile.parse(b'# only a comment')
    assert props.set('a', '1') is True
    assert props.dump() == b'# only a comment\na=1\n'
    props = PropertiesFile.parse(b'x=1\r\ny=2')
    props.set('z', '3')
    assert props.dump() == b'x=1\r\ny=2\r\nz=3\r\n'
    assert props.as_dict() == {'x': '1', 'y': '2', 'z': '3'}


def test_set_on_an_empty_file():
    props = PropertiesFile.parse(b'')
    assert props.set('config.keystore.type', 'jceks') is True
    assert props.dump() == b'config.keystore.type=jceks\n'


def test_set_same_value_is_no_change():
    props = PropertiesFile.parse(EKM_SAMPLE)
    for key, value in EKM_VALUES.items():
        assert props.set(key, value) is False
    assert props.dump() == EKM_SAMPLE


def test_set_escapes_like_java_store():
    props = PropertiesFile.parse(b'')
    props.set('key with spaces=x', ' lead:#! \u20ac\\')
    assert props.dump() == b'key\\ with\\ spaces\\=x=\\ lead\\:\\#\\! \\u20AC\\\\\n'


def test_set_refuses_a_duplicated_key_it_would_change():
    data = b'a=1\nb=2\n\n# again\na=3\n'
    props = PropertiesFile.parse(data)
    with pytest.raises(PropertiesError) as info:
        props.set('a', '4')
    assert str(info.value) == "cannot change 'a': it is defined on lines 1 and 5; remove the duplicate first."
    assert props.dump() == data
    # The value Java reads is already the wanted one: nothing to edit, nothing ambiguous.
    assert props.set('a', '3') is False


def test_duplicate_message_lists_every_line():
    props = PropertiesFile.parse(b'a=1\na=2\na=3\n')
    with pytest.raises(PropertiesError, match=r"defined on lines 1, 2 and 3;"):
        props.set('a', '4')


def test_remove_deletes_every_line_of_the_key():
    props = PropertiesFile.parse(EKM_SAMPLE)
    assert props.remove('symmetricKeySet') is True
    before = lines_of(EKM_SAMPLE)
    assert props.dump() == b''.join(before[:8] + before[10:])
    assert props.remove('symmetricKeySet') is False
    dup = PropertiesFile.parse(b'a=1\nb=2\na=3\n')
    assert dup.remove('a') is True
    assert dup.dump() == b'b=2\n'


def test_remove_missing_key_is_no_change():
    props = PropertiesFile.parse(EKM_SAMPLE)
    assert props.remove('nope') is False
    assert props.dump() == EKM_SAMPLE


def test_appending_after_a_dangling_continuation_is_refused():
    data = b'a=1\nb=2\\\n'
    props = PropertiesFile.parse(data)
    assert props.get('b') == '2'
    with pytest.raises(PropertiesError, match=r"cannot add 'c': line 2 ends in a backslash"):
        props.set('c', '3')
    assert props.dump() == data
    # Changing the dangling line itself is fine: its value is rewritten on one line.
    assert props.set('b', '5') is True
    assert props.dump() == b'a=1\nb=5\n'
    assert props.set('c', '3') is True
    assert props.dump() == b'a=1\nb=5\nc=3\n'


@pytest.mark.parametrize('data, message', [
    (b'ok=1\nbad\\u12x=2\n', r'^line 2: malformed \\uXXXX escape in a key;'),
    (b'ok=1\n\nk=\\u00\n', r"^line 3: malformed \\uXXXX escape in the value of 'k';"),
    (b'k=abc\\uzzzz\n', r"^line 1: malformed \\uXXXX escape in the value of 'k';"),
    (b'a=1\nb=\x00\n', r'^line 2: contains a NUL byte'),
    (b'\xef\xbb\xbfa=1\n', r'^line 1: the file starts with a UTF-8 byte order mark'),
    (b'# ends in \\\n\\\\\n', r'^line 2: a line of backslashes right after a comment'),
    (b'a=1\n\\\n# c\n', r'^line 3: a comment that follows a line holding only a backslash'),
])
def test_parse_refuses_what_java_cannot_load_or_reads_differently(data, message):
    with pytest.raises(PropertiesError, match=message):
        PropertiesFile.parse(data)


def test_parse_refuses_text():
    with pytest.raises(TypeError):
        PropertiesFile.parse('a=1')


def test_escape_key_and_value_follow_java_store():
    assert escape_key('a b=c:d#e!f\\g') == 'a\\ b\\=c\\:d\\#e\\!f\\\\g'
    assert escape_value(' a b ') == '\\ a b '
    assert escape_value('\t\n\r\f') == '\\t\\n\\r\\f'
    assert escape_value('\x01\x7f\xe9\u20ac') == '\\u0001\\u007F\\u00E9\\u20AC'
    assert escape_value('\U0001F600') == '\\uD83D\\uDE00'
    assert escape_key('') == ''


@pytest.mark.parametrize('key, secret', [
    ('config.keystore.password', True), ('Admin.PASSWD', True), ('db.pwd', True), ('api.Token', True),
    ('client.secret', True), ('TransportListener.tcp.port', False), ('symmetricKeySet', False),
])
def test_is_secret_key(key, secret):
    assert is_secret_key(key) is secret


def test_masked_text_hides_secret_values_only():
    props = PropertiesFile.parse(b'a.password = hunter2\\\n  more\nport=3801\nempty.password=\n')
    text = props.masked_text()
    assert text == 'a.password = %s\nport=3801\nempty.password=\n' % MASK
    assert 'hunter2' not in text
    assert props.dump() == b'a.password = hunter2\\\n  more\nport=3801\nempty.password=\n'
