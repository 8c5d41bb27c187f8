"""Sending a finished run's report to the ComfyUI frontend, when a client is listening.

The message names the CacheKit node by its execution id (ComfyUI's `unique_id`): a plain number for a
node of the root graph, "parent:child" for a node inside a subgraph (the frontend's execution id, which
web/cachekit.js resolves through the subgraphs). It also carries the prompt id and the id of the node
that ran the sampler, so the frontend can group the runs of one prompt (two samplers sharing a cache).
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("CacheKit")

REPORT_EVENT = "cachekit.run_report"


def _executing() -> tuple[str | None, str | None]:
    """(prompt id, id of the node being executed) when ComfyUI says so, else (None, None)."""
    try:
        from comfy_execution.utils import get_executing_context
    except ImportError:
        return None, None
    context = get_executing_context()
    if context is None:
        return None, None
    return getattr(context, "prompt_id", None), getattr(context, "node_id", None)


def send_report_to_ui(report: Any, spec: Any) -> None:
    """Send the run report to the node that installed the cache (no-op without a server or client)."""
    if spec.node_id is None:
        return
    try:
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    client_id = getattr(server, "client_id", None) if server is not None else None
    if client_id is None:
        return
    prompt_id, executing = _executing()
    message = {
        "node": str(spec.node_id),
        "prompt_id": prompt_id or getattr(server, "last_prompt_id", None),
        "sampler_node": executing,
        "report": report.to_dict(),
    }
    try:
        server.send_sync(REPORT_EVENT, message, client_id)
    except Exception as err:  # the UI message must never fail a run
        log.debug("CacheKit: could not send the run report to the UI: %s", err)
