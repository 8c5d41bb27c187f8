"""The ComfyUI frontend builds the browser tests run against, one folder per version under <repo>/.frontends/.

ComfyUI serves a frontend from any folder given with `--front-end-root`, so the tests do not install
the builds: `prepare_frontends()` downloads each wheel of `comfyui-frontend-package` with
`pip download --no-deps` and unpacks its `static` folder to `.frontends/<version>/` (git ignores it).
It is idempotent: a version already unpacked is not downloaded again. Offline, it says so in one line
and the browser tests for the missing versions are skipped with that reason.

Which builds are tested depends on the ComfyUI release under test (`frontends_for`):
- ComfyUI 0.33 and newer: 1.49.6 (the build for 0.33.0) and 1.58.1 (the newest on the registry when
  this was written), each in the classic canvas renderer and in Nodes 2.0 (Vue-rendered nodes);
- older (0.3.60 - 0.3.64): 1.27.10, classic canvas only (Nodes 2.0 is a hidden, experimental setting there).
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FRONTENDS_DIR = REPO / ".frontends"
PACKAGE = "comfyui-frontend-package"
STATIC = "comfyui_frontend_package/static/"

CLASSIC = "classic"
NODES_2 = "nodes2"  # "Modern Node Design (Nodes 2.0)": setting Comfy.VueNodes.Enabled

TARGET_FOR_0_33 = "1.49.6"
NEWEST_TESTED = "1.58.1"
FOR_0_3_60 = "1.27.10"
ALL_VERSIONS = (TARGET_FOR_0_33, NEWEST_TESTED, FOR_0_3_60)


@dataclass(frozen=True)
class Frontend:
    """One frontend build in one renderer."""

    version: str
    renderer: str

    @property
    def id(self) -> str:
        return f"{self.version}-{self.renderer}"

    @property
    def root(self) -> Path:
        """The folder to give ComfyUI as --front-end-root (it holds index.html once prepared)."""
        return frontend_root(self.version)

    @property
    def vue_nodes(self) -> bool:
        return self.renderer == NODES_2


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def comfyui_version(comfyui: Path | None) -> str | None:
    """The release of a ComfyUI checkout (its comfyui_version.py), or None."""
    path = Path(comfyui) / "comfyui_version.py" if comfyui is not None else None
    if path is None or not path.is_file():
        return None
    match = re.search(r"__version__\s*=\s*[\"']([^\"']+)", path.read_text())
    return match.group(1) if match else None


def frontends_for(comfyui: Path | None) -> list[Frontend]:
    """The frontend x renderer combinations tested against this ComfyUI checkout."""
    version = comfyui_version(comfyui)
    if version is not None and _version_tuple(version) < (0, 4):
        return [Frontend(FOR_0_3_60, CLASSIC)]
    return [Frontend(v, r) for v in (TARGET_FOR_0_33, NEWEST_TESTED) for r in (CLASSIC, NODES_2)]


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def frontend_root(version: str) -> Path:
    return FRONTENDS_DIR / version


def is_prepared(version: str) -> bool:
    return (frontend_root(version) / "index.html").is_file()


def unavailable_reason(version: str) -> str | None:
    """Why a frontend build cannot be used here, or None when it is prepared."""
    if is_prepared(version):
        return None
    return (f"frontend {version} is not in {_shown(FRONTENDS_DIR)}/ "
            f"(run `python tests/harness/frontends.py` with access to PyPI)")


def _download(version: str, into: Path) -> Path | None:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "--disable-pip-version-check", "--retries", "1", "--timeout", "20",
               "-d", str(into), f"{PACKAGE}=={version}"]
    try:
        subprocess.run(command, check=True, timeout=600, capture_output=True)
    except (OSError, subprocess.SubprocessError):
        return None
    wheels = sorted(into.glob("comfyui_frontend_package-*.whl"))
    return wheels[0] if wheels else None


def _unpack(wheel: Path, target: Path) -> None:
    """The wheel's static folder becomes `target` (written aside first, then renamed: never half there)."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        for member in archive.infolist():
            if not member.filename.startswith(STATIC) or member.is_dir() or member.filename.endswith(".map"):
                continue  # source maps are half the build and no page needs them
            relative = member.filename[len(STATIC):]
            destination = partial / relative
            if ".." in Path(relative).parts:
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out)
    if not (partial / "index.html").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"{wheel.name} has no {STATIC}index.html")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def prepare_frontends(versions: tuple[str, ...] | list[str] = ALL_VERSIONS, quiet: bool = False) -> list[str]:
    """Download and unpack the frontend builds that are not there yet; returns the versions missing after it.

    Quick when all are present (no network). When some cannot be downloaded it prints one line and
    returns them; the browser tests for them are skipped.
    """
    missing = [v for v in versions if not is_prepared(v)]
    if not missing:
        return []
    FRONTENDS_DIR.mkdir(parents=True, exist_ok=True)
    failed = []
    for version in missing:
        with tempfile.TemporaryDirectory(prefix="cachekit-frontend-") as tmp:
            wheel = _download(version, Path(tmp))
            try:
                if wheel is None:
                    raise RuntimeError("download failed")
                _unpack(wheel, frontend_root(version))
            except (RuntimeError, OSError, zipfile.BadZipFile):
                failed.append(version)
                continue
        if not quiet:
            print(f"CacheKit setup: frontend {version} unpacked into {_shown(frontend_root(version))}/", flush=True)
    if failed:
        print(f"CacheKit setup: could not download {PACKAGE} {', '.join(failed)} (offline?): "
              "their browser tests will be skipped.", flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(1 if prepare_frontends() else 0)
