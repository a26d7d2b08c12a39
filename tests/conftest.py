"""Make ``ansible_collections.tapecrypt.ekm`` importable for plain pytest runs.

ansible-test runs these tests from inside an ``ansible_collections/tapecrypt/ekm``
tree already; a developer running ``pytest tests/unit`` from a checkout gets a
symlinked tree under ``.build/`` instead.
"""
import os
import sys

try:
    import ansible_collections.tapecrypt.ekm  # noqa: F401  pylint: disable=unused-import
except ImportError:
    _ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _BUILD = os.path.join(_ROOT, '.build')
    _LINK = os.path.join(_BUILD, 'ansible_collections', 'tapecrypt', 'ekm')
    if not os.path.exists(_LINK):
        os.makedirs(os.path.dirname(_LINK), exist_ok=True)
        os.symlink(_ROOT, _LINK)
    sys.path.insert(0, _BUILD)
    for _name in [n for n in sys.modules if n == 'ansible_collections' or n.startswith('ansible_collections.')]:
        del sys.modules[_name]
