"""Sending a finished run's report to the ComfyUI frontend, when a client is listening."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("CacheKit")

REPORT_EVENT = "cachekit.run_report"


def send_report_to_ui(report: Any, spec: Any) -> None:
    """Send the run report to the node that installed the cache (no-op without a server or client)."""
    if spec.node_id is None:
        return
    try:
        from server import PromptServer
    except ImportError:
        return
    server = getattr(PromptServer, "instance", None)
    if server is None or getattr(server, "client_id", None) is None:
        return
    server.send_sync(REPORT_EVENT, {"node": spec.node_id, "report": report.to_dict()}, server.client_id)
