"""The default cache root: what platformdirs says, found without importing platformdirs on Linux."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import platformdirs
import pytest

from hkjit.cache.roots import default_root
from helpers import child_result, copy_cache, run_child

linux = pytest.mark.skipif(sys.platform != "linux", reason="the direct XDG lookup is Linux-only")


@linux
@pytest.mark.parametrize("xdg", [None, "", "relative/cache", "/abs/xdg-cache", "/abs/trailing/"])
@pytest.mark.parametrize("home", ["/home/someone", "/root"])
def test_default_root_equals_platformdirs(monkeypatch, xdg, home):
    monkeypatch.setenv("HOME", home)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert default_root() == Path(platformdirs.user_cache_dir("hkjit"))


@linux
def test_fresh_process_hits_the_default_root_without_importing_platformdirs(built_cache, tmp_path):
    """No HKJIT_CACHE_DIR: a real process finds the entry under $XDG_CACHE_HOME/hkjit, and platformdirs (2-3 ms of
    a warm start) stays unimported."""
    xdg = tmp_path / "xdg"
    copy_cache(built_cache, xdg / "hkjit")
    code = textwrap.dedent("""
        import json, sys
        from hkjit.loader import load_cached
        from hkjit.specs import get_spec
        loaded = load_cached(get_spec("cpu"))
        print(json.dumps({"built": loaded.built, "path": str(loaded.path),
                          "platformdirs": "platformdirs" in sys.modules}))
    """)
    res = child_result(run_child(None, code, XDG_CACHE_HOME=str(xdg)))
    assert not res["built"] and Path(res["path"]).is_relative_to(xdg / "hkjit")
    assert res["platformdirs"] is False
