"""A real headless ComfyUI server on loopback, with CacheKit and the test node pack installed."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .comfy_env import REPO, find_comfyui


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComfyServer:
    """Starts `main.py --cpu` in a temporary base directory; `stop()` ends it.

    Without a frontend (the default) it serves an empty folder as its web root. `front_end=True` serves
    the installed `comfyui-frontend-package`; `front_end_root` serves that folder instead (a frontend
    build unpacked by harness/frontends.py), as ComfyUI's `--front-end-root`.
    """

    def __init__(self, base: Path | None = None, front_end: bool = False, front_end_root: Path | None = None) -> None:
        root = find_comfyui()
        if root is None:
            raise RuntimeError("no ComfyUI checkout found")
        self.root = root
        self._owns_base = base is None
        self.base = Path(base or tempfile.mkdtemp(prefix="cachekit-server-"))
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        custom_nodes = self.base / "custom_nodes"
        custom_nodes.mkdir(parents=True, exist_ok=True)
        for name, target in (("comfyui-cachekit", REPO), ("cachekit_test_nodes", REPO / "tests" / "comfy_test_nodes")):
            link = custom_nodes / name
            if not link.exists():
                link.symlink_to(target, target_is_directory=True)
        (self.base / "models" / "diffusion_models").mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / "comfyui.log"
        command = [
            sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base), "--disable-api-nodes", "--database-url", f"sqlite:///{self.base}/comfyui.db",
        ]
        if front_end_root is not None:
            command += ["--front-end-root", str(front_end_root)]
        elif not front_end:
            empty = self.base / "no-frontend"
            empty.mkdir(exist_ok=True)
            command += ["--front-end-root", str(empty)]
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(command, cwd=root, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    @property
    def models(self) -> Path:
        """The server's models folder."""
        return self.base / "models"

    def wait_ready(self, timeout: float = 180) -> None:
        """Block until the server answers, or raise with the log's tail."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited early:\n{self.log_text()[-3000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"ComfyUI did not start in {timeout} s:\n{self.log_text()[-3000:]}")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, payload: dict) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as err:
            return {"http_error": err.code, **json.loads(err.read() or b"{}")}

    def object_info(self, node_class: str | None = None) -> dict:
        """/object_info, or one node's entry."""
        info = self.get("/object_info" + (f"/{node_class}" if node_class else ""))
        return info[node_class] if node_class else info

    def queue_prompt(self, prompt: dict) -> dict:
        """POST /prompt; returns the server's answer (prompt_id, or error and node_errors)."""
        return self.post("/prompt", {"prompt": prompt, "client_id": "cachekit-tests"})

    def wait_for(self, prompt_id: str, timeout: float = 300) -> dict:
        """The /history entry of a prompt once it has finished."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                entry = history[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            time.sleep(0.2)
        raise TimeoutError(f"prompt {prompt_id} did not finish:\n{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        """Everything the server printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """End the server process and remove the temporary base directory it was given."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()
        if self._owns_base:
            shutil.rmtree(self.base, ignore_errors=True)
