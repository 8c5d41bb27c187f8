"""Forward contexts for unit tests of the methods' rules (no ComfyUI, no model)."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from cachekit.cache_core.runtime.forward import BASELINE, ForwardContext, chunk_layout


def context(step: int = 0, *, uuids: Sequence[str] = ("c",), rows: int = 1, sigma: Optional[float] = None,
            progress: Optional[float] = None, in_window: bool = True, caching: bool = True, evaluation: Optional[int] = None,
            decisions: Optional[dict] = None, cond_indices: Optional[Sequence[int]] = None, run: Any = None) -> ForwardContext:
    """A BASELINE forward context of `len(uuids)` branches of `rows` rows each at step `step`."""
    indices = list(cond_indices) if cond_indices is not None else [1 if u == "u" else 0 for u in uuids]
    return ForwardContext(
        run=run, step=step, sigma=1.0 - step / 10 if sigma is None else sigma,
        progress=step / 10 if progress is None else progress,
        chunks=chunk_layout(rows * len(uuids), indices, list(uuids)), kind=BASELINE, caching=caching,
        in_window=in_window and caching, evaluation=step + 1 if evaluation is None else evaluation, device=None,
        decisions={} if decisions is None else decisions,
    )


def attend(method: Any, ctx: ForwardContext, site: Any, compute: Any, sample: Any) -> Any:
    """What the runtime's attention hooks do around one attention call of an AttentionPolicy."""
    reused = method.attention_before(ctx, site, sample)
    if reused is not None:
        return reused
    out = compute()
    method.attention_after(ctx, site, sample, out)
    return out
