"""What installing CacheKit brings into a user's ComfyUI environment: only its runtime imports."""
from __future__ import annotations

import ast
import re
import tomllib

from harness.packages import REPO

RUNTIME = ("__init__.py", "nodes", "cache_core")


def runtime_imports() -> set[str]:
    """Top-level modules imported by the code ComfyUI loads (not tests, bench)."""
    found = set()
    files = [REPO / "__init__.py", *(REPO / "nodes").rglob("*.py"), *(REPO / "cache_core").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found


def test_runtime_dependencies_are_what_the_product_imports():
    comfy_provided = {"torch", "comfy", "comfy_api", "comfy_execution", "folder_paths", "server", "comfyui_version"}
    third_party = runtime_imports() - comfy_provided - set(__import__("sys").stdlib_module_names)
    assert third_party == {"safetensors"}
    requirements = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert [re.split("[<>=]", r)[0] for r in requirements] == ["safetensors"]
    assert [re.split("[<>=]", r)[0] for r in project["dependencies"]] == ["safetensors"]


def test_the_frontend_and_diffusers_are_test_extras_only():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    test_extra = {re.split("[<>=]", r)[0] for r in project["optional-dependencies"]["test"]}
    assert {"diffusers", "comfyui-frontend-package"} <= test_extra
    lines = [line for line in (REPO / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert not any(name in line for line in lines for name in ("diffusers", "frontend"))


def test_versions_agree():
    from cachekit.cache_core.version import VERSION

    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"] == VERSION
