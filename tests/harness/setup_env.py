"""Prepare a machine for CacheKit's tests and demo (`make setup`): ComfyUI, its Python packages, the test tools.

ComfyUI (the current release, 0.33.0) is looked for in $COMFYUI_PATH, ~/ComfyUI, <repo>/.comfyui.
- Found: that checkout is used and nothing of ComfyUI is downloaded.
- Not found: ComfyUI 0.33.0 is cloned into <repo>/.comfyui (git ignores it); when it cannot be cloned, the release
  tarball is unpacked there from $CACHEKIT_COMFYUI_TARBALLS, <repo>/../shared/comfyui or /work/shared/comfyui.
The oldest supported release (0.3.60), which `make test` also tests, is looked for in $COMFYUI_OLDEST_PATH,
~/ComfyUI-0.3.60, <repo>/.comfyui-oldest. When it is missing it is unpacked there from a local tarball, or (only when
ComfyUI itself had to be fetched) cloned.
- Neither possible: one line says so, and the tests that need ComfyUI are skipped.

Python packages go into the active environment (one line says so when no virtual environment is active), and only
what is missing or at the wrong version is installed, so a second run is quick and offline:
- the found ComfyUI's own requirements.txt, with torch and torchvision held to this machine's wheels
  (torch==2.14.1, torchvision==0.29.1) and torchaudio installed with --no-deps (its own pins would replace torch);
- the test tools: pytest, playwright (the system Chromium is used, no browser download), diffusers==0.42.1,
  matplotlib, and cache-dit==1.5.3 with --no-deps (the benchmark's diffusers-side reference).
The oldest release pins a few packages (its frontend, workflow templates, embedded docs) at versions other than the
current one's; those go into <repo>/.comfyui-oldest-packages/ (pip --target --no-deps, git-ignored), which
oldest_comfyui.py puts first on PYTHONPATH for the oldest run only, so one environment serves both releases; what the
oldest release needs and is not installed at all (and what the overlay's packages need) is installed normally.
Finally the frontend builds of the browser tests are prepared (harness.frontends, where present).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.append(str(REPO / "tests"))  # last: ComfyUI's namespace package `comfy` must win over tests/comfy
from harness.comfy_env import (  # noqa: E402
    CURRENT, OLDEST_OVERLAY, OLDEST_SUPPORTED, comfyui_version, find_comfyui, find_oldest_comfyui,
)

COMFYUI_REPOSITORY = "https://github.com/Comfy-Org/ComfyUI.git"
COMFYUI_PINNED_COMMIT = "2f35f4a08176d993cded35dac3332be4f7287f41"  # ComfyUI 0.33.0, the current release
CLONE_DIR = REPO / ".comfyui"
COMFYUI_OLDEST_COMMIT = "b8730510db30c8858e1e5d8e126ef19eac395560"  # ComfyUI 0.3.60, the oldest supported
OLDEST_CLONE_DIR = REPO / ".comfyui-oldest"
CLONE_TIMEOUT_S = 300

# Held to this machine's local wheels: nothing that setup installs may move them.
HELD = {"torch": "2.14.1", "torchvision": "0.29.1"}
TORCHAUDIO = "torchaudio==2.11.1"  # imports and works with torch 2.14.1; installed with --no-deps
TEST_PACKAGES = ["pytest>=8", "playwright>=1.50", "diffusers==0.42.1", "matplotlib>=3.7"]
NO_DEPS_PACKAGES = ["cache-dit==1.5.3"]  # the benchmark's reference; its own pins would pull in other torch builds


PIP_ENV = dict(os.environ, PIP_ROOT_USER_ACTION="ignore", PIP_DISABLE_PIP_VERSION_CHECK="1")


def say(text: str) -> None:
    print(f"CacheKit setup: {text}", flush=True)


# --------------------------------------------------------------------------------------------------------------------
# Getting ComfyUI


def clone_comfyui(commit: str, into: Path) -> Path | None:
    """Clone ComfyUI at `commit` into the ignored folder `into`; None when that is impossible (offline, ...)."""
    if shutil.which("git") is None:
        return None
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    try:
        for command in (
            ["git", "init", "-q", str(into)],
            ["git", "-C", str(into), "fetch", "-q", "--depth", "1", COMFYUI_REPOSITORY, commit],
            ["git", "-C", str(into), "checkout", "-q", "FETCH_HEAD"],
        ):
            subprocess.run(command, check=True, timeout=CLONE_TIMEOUT_S, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        shutil.rmtree(into, ignore_errors=True)
        return None
    return into if (into / "comfy" / "model_patcher.py").is_file() else None


def tarball_folders() -> list[Path]:
    """Where release tarballs (ComfyUI-<version>.tar.gz) are looked for, in order."""
    folders = [os.environ.get("CACHEKIT_COMFYUI_TARBALLS"), str(REPO.parent / "shared" / "comfyui"), "/work/shared/comfyui"]
    return [Path(f) for f in folders if f]


def find_tarball(version: str) -> Path | None:
    for folder in tarball_folders():
        candidate = folder / f"ComfyUI-{version}.tar.gz"
        if candidate.is_file():
            return candidate
    return None


def unpack_tarball(version: str, into: Path) -> Path | None:
    """Unpack ComfyUI-<version>.tar.gz (one top folder) into `into`; None when there is no tarball or it is unusable."""
    tarball = find_tarball(version)
    if tarball is None:
        return None
    into.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{into.name}-unpacking-", dir=into.parent))
    try:
        with tarfile.open(tarball) as archive:
            if hasattr(tarfile, "data_filter"):
                archive.extractall(staging, filter="data")
            else:  # Python < 3.11.4
                archive.extractall(staging)
        tops = [p for p in staging.iterdir() if p.is_dir()]
        if len(tops) != 1 or not (tops[0] / "comfy" / "model_patcher.py").is_file():
            return None
        shutil.rmtree(into, ignore_errors=True)
        tops[0].rename(into)
    except (OSError, tarfile.TarError):
        return None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"unpacked {tarball} into {into.relative_to(REPO) if into.is_relative_to(REPO) else into}")
    return into


def fetch_comfyui(version: str, commit: str, into: Path, allow_clone: bool = True) -> Path | None:
    """Clone the release (when allowed), else unpack its local tarball."""
    if allow_clone:
        cloned = clone_comfyui(commit, into)
        if cloned is not None:
            say(f"cloned ComfyUI {version} into {into.relative_to(REPO)}")
            return cloned
    return unpack_tarball(version, into)


# --------------------------------------------------------------------------------------------------------------------
# Python packages


def _requirement_class():
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a bare venv: pip's own copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement


def read_requirements(path: Path) -> list[str]:
    """The requirement lines of a requirements.txt (comments, options and blank lines dropped)."""
    lines = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def _installed_version(name: str, path: list[str] | None = None) -> str | None:
    try:
        if path is None:
            return importlib.metadata.version(name)
        for dist in importlib.metadata.distributions(path=path):
            if _canonical(dist.metadata["Name"] or "") == _canonical(name):
                return dist.version
    except importlib.metadata.PackageNotFoundError:
        return None
    return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def satisfied(requirement: str, path: list[str] | None = None) -> bool:
    """Is `requirement` installed at a matching version (in `path`, else in this environment)?"""
    req = _requirement_class()(requirement)
    if req.marker is not None and not req.marker.evaluate():
        return True
    version = _installed_version(req.name, path)
    return version is not None and (not req.specifier or req.specifier.contains(version.split("+")[0], prereleases=True))


def _held(requirement: str) -> str:
    """torch / torchvision pinned to this machine's wheels; anything else unchanged."""
    name = _canonical(_requirement_class()(requirement).name)
    return f"{name}=={HELD[name]}" if name in HELD else requirement


def pip_install(requirements: list[str], *options: str) -> bool:
    """pip install `requirements` with torch and torchvision held; True when pip succeeded."""
    with tempfile.TemporaryDirectory(prefix="cachekit-pip-") as tmp:
        constraints = Path(tmp) / "held.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in HELD.items()))
        # -qq: errors only (this machine's pip configuration prints a warning for every package otherwise)
        command = [sys.executable, "-m", "pip", "install", "-qq", "-c", str(constraints), *options, *requirements]
        return subprocess.run(command, stdin=subprocess.DEVNULL, env=PIP_ENV).returncode == 0


def in_virtual_environment() -> bool:
    return sys.prefix != sys.base_prefix or bool(os.environ.get("VIRTUAL_ENV") or os.environ.get("CONDA_PREFIX"))


def install_packages(comfyui: Path | None) -> bool:
    """Install what the found ComfyUI and the tests need and is missing or at the wrong version; True when all is there."""
    wanted = read_requirements(comfyui / "requirements.txt") if comfyui is not None else []
    with_deps = [_held(r) for r in wanted + TEST_PACKAGES if _canonical(_requirement_class()(r).name) != "torchaudio"]
    needs_torchaudio = comfyui is not None and any(_canonical(_requirement_class()(r).name) == "torchaudio" for r in wanted)
    missing = [r for r in with_deps if not satisfied(r)]
    no_deps = [r for r in NO_DEPS_PACKAGES if not satisfied(r)]
    if needs_torchaudio and not satisfied("torchaudio"):
        no_deps.append(TORCHAUDIO)
    if not in_virtual_environment():
        say(f"no virtual environment is active: packages are checked{' and installed' if missing or no_deps else ''} "
            f"in this Python's own environment ({sys.prefix})")
    if not missing and not no_deps:
        return True
    ok = True
    if missing:
        say(f"installing {', '.join(missing)}")
        ok = pip_install(missing) and ok
    if no_deps:
        say(f"installing without dependencies {', '.join(no_deps)}")
        ok = pip_install(no_deps, "--no-deps") and ok
    if not ok:
        say("some packages could not be installed; tests that need them will fail or be skipped.")
    return ok


def _overlay_dependencies() -> list[str]:
    """The requirements of the packages in OLDEST_OVERLAY (installed there without theirs)."""
    requirement = _requirement_class()
    needs = []
    for dist in importlib.metadata.distributions(path=[str(OLDEST_OVERLAY)]):
        for line in dist.requires or []:
            req = requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                needs.append(str(req).split(";")[0].strip())
    return needs


def prepare_oldest_overlay(oldest: Path) -> bool:
    """Make this environment serve the oldest release too; quick when it does already.

    Its requirements that are installed here at other versions (the pinned frontend, workflow templates and docs) go
    into OLDEST_OVERLAY with --no-deps, which only the oldest release's run puts first on PYTHONPATH. Requirements that
    are not installed at all, and what the overlay's packages need, are installed here (they change nothing installed).
    """
    stamp = OLDEST_OVERLAY / "cachekit-overlay.json"
    requirement = _requirement_class()
    wanted = [r for r in read_requirements(oldest / "requirements.txt") if _canonical(requirement(r).name) not in
              (*HELD, "torchaudio")]
    needed = [r for r in wanted if not satisfied(r)]  # what the shared environment lacks for the oldest release
    conflicts = [r for r in needed if _installed_version(requirement(r).name) is not None]
    absent = [r for r in needed if r not in conflicts]
    version = comfyui_version(oldest) or OLDEST_SUPPORTED
    ok = True
    if absent:
        say(f"ComfyUI {version} also needs {', '.join(absent)}")
        ok = pip_install(absent)
    recorded = json.loads(stamp.read_text()) if stamp.is_file() else None
    if not (recorded == conflicts and all(satisfied(r, [str(OLDEST_OVERLAY)]) for r in conflicts)):
        shutil.rmtree(OLDEST_OVERLAY, ignore_errors=True)
        if not conflicts:
            return ok
        OLDEST_OVERLAY.mkdir(parents=True)
        say(f"ComfyUI {version} pins {', '.join(conflicts)}: installing them into {OLDEST_OVERLAY.relative_to(REPO)}/ "
            "for its run only")
        command = [sys.executable, "-m", "pip", "install", "-qq", "--no-deps", "--target", str(OLDEST_OVERLAY), *conflicts]
        if subprocess.run(command, stdin=subprocess.DEVNULL, env=PIP_ENV).returncode != 0:
            say(f"the packages of ComfyUI {version} could not be installed; its server and browser tests will fail.")
            shutil.rmtree(OLDEST_OVERLAY, ignore_errors=True)
            return False
        stamp.write_text(json.dumps(conflicts))
    unmet = [r for r in _overlay_dependencies() if not satisfied(r)]
    if unmet:
        say(f"the packages of ComfyUI {version} need {', '.join(unmet)}")
        ok = pip_install(unmet) and ok
    return ok


def prepare_frontends() -> None:
    """The browser tests' frontend builds (harness/frontends.py, where it exists)."""
    try:
        from harness import frontends
    except ImportError:
        return
    frontends.prepare_frontends()


# --------------------------------------------------------------------------------------------------------------------


def main() -> int:
    comfyui = find_comfyui()
    fetched = comfyui is None
    if comfyui is None:
        comfyui = fetch_comfyui(CURRENT, COMFYUI_PINNED_COMMIT, CLONE_DIR)
    if comfyui is None:
        say("no ComfyUI found ($COMFYUI_PATH, ~/ComfyUI, .comfyui), and it could neither be cloned nor unpacked from a "
            "tarball: the ComfyUI tests will be skipped.")
    else:
        say(f"using ComfyUI {comfyui_version(comfyui) or '(unknown version)'} at {comfyui}")
    oldest = find_oldest_comfyui()
    if oldest is None and comfyui is not None:
        oldest = fetch_comfyui(OLDEST_SUPPORTED, COMFYUI_OLDEST_COMMIT, OLDEST_CLONE_DIR, allow_clone=fetched)
        if oldest is None:
            say(f"ComfyUI {OLDEST_SUPPORTED} (oldest supported) is not here and could not be "
                f"{'cloned or ' if fetched else ''}unpacked; it will not be tested.")
    install_packages(comfyui)
    if oldest is not None:
        say(f"oldest supported ComfyUI {comfyui_version(oldest) or OLDEST_SUPPORTED} at {oldest}")
        prepare_oldest_overlay(oldest)
    prepare_frontends()
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
