"""The package entry point: V1 mappings only as a fallback when ComfyUI has no V3 node API."""
from __future__ import annotations

import importlib.util
import sys

import pytest

from harness.packages import REPO

NODE_IDS = {
    "CacheKitFirstBlockCache", "CacheKitPyramidAttentionBroadcast", "CacheKitFasterCache",
    "CacheKitTaylorSeerCache", "CacheKitMagCache", "CacheKitMagCacheCalibrate", "CacheKitHybridBlockCache",
}


def _load_pack_without_v3(monkeypatch):
    for name in list(sys.modules):
        if name == "cachekit_v1" or name.startswith("cachekit_v1."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "comfy_api", None)  # `import comfy_api.latest` fails
    monkeypatch.setitem(sys.modules, "comfy_api.latest", None)
    spec = importlib.util.spec_from_file_location("cachekit_v1", REPO / "__init__.py", submodule_search_locations=[str(REPO)])
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "cachekit_v1", module)
    spec.loader.exec_module(module)
    return module


def test_without_v3_api_only_v1_mappings_are_exported(monkeypatch):
    pack = _load_pack_without_v3(monkeypatch)
    assert not hasattr(pack, "comfy_entrypoint")
    assert set(pack.NODE_CLASS_MAPPINGS) == NODE_IDS
    assert pack.WEB_DIRECTORY == "./web"
    fbc = pack.NODE_CLASS_MAPPINGS["CacheKitFirstBlockCache"]
    required = fbc.INPUT_TYPES()["required"]
    assert list(required) == ["model", "threshold", "start_percent", "end_percent", "max_consecutive_skips"]
    assert all("tooltip" in spec[1] for spec in required.values())
    assert fbc.RETURN_TYPES == ("MODEL",) and fbc.CATEGORY == "CacheKit"
    assert fbc.VALIDATE_INPUTS(threshold=float("nan"), start_percent=0.0, end_percent=1.0, max_consecutive_skips=0) != True  # noqa: E712


def test_v1_node_on_a_comfyui_without_wrappers_says_to_update(monkeypatch):
    pack = _load_pack_without_v3(monkeypatch)
    monkeypatch.setitem(sys.modules, "comfy", None)
    monkeypatch.setitem(sys.modules, "comfy.patcher_extension", None)
    node = pack.NODE_CLASS_MAPPINGS["CacheKitFirstBlockCache"]()
    with pytest.raises(RuntimeError, match="needs ComfyUI 0.3.60 or newer"):
        node.run(object(), threshold=0.05, start_percent=0.0, end_percent=1.0, max_consecutive_skips=0)
