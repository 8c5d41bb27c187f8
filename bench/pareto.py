"""Pareto fronts of quality against speedup, and reading a front at a given speedup.

A front here is the set of settings that no other setting of the same implementation beats in both
speedup and quality. Reading it at speedup x gives the best quality among the settings that reach at
least x (a step function, no interpolation): what a user of that implementation can get at x or
faster with the settings that were measured. None where no setting reaches x.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

Point = tuple[float, float]  # (speedup, quality)


def front(points: Iterable[Point]) -> list[Point]:
    """The non-dominated points, sorted by speedup (ascending; quality then descends)."""
    best: list[Point] = []
    for x, y in sorted(points, key=lambda p: (-p[0], -p[1])):  # fastest first
        if not best or y > best[-1][1]:
            best.append((x, y))
    return best[::-1]


def quality_at(points: Iterable[Point], speedup: float) -> Optional[float]:
    """Best quality among the points with speedup >= `speedup`; None when none reaches it."""
    reaching = [y for x, y in points if x >= speedup - 1e-9]
    return max(reaching) if reaching else None


def margins(ours: Sequence[Point], theirs: dict[str, Sequence[Point]], grid: Sequence[float]) -> list[dict]:
    """Per grid speedup: our front's quality, the best other implementation there and its quality, and
    the margin (ours - best other; None where either has no setting that fast)."""
    rows = []
    for x in grid:
        mine = quality_at(ours, x)
        others = {name: quality_at(points, x) for name, points in theirs.items()}
        reached = {name: q for name, q in others.items() if q is not None}
        best_name = max(reached, key=reached.get) if reached else None
        best = reached[best_name] if best_name else None
        rows.append(dict(speedup=x, ours=mine, best=best, best_name=best_name, others=others,
                         margin=None if mine is None or best is None else mine - best))
    return rows


def interpolate(points: Sequence[Point], x: float) -> Optional[float]:
    """Piecewise-linear y at x through `points` (sorted by x inside); None outside their range."""
    pts = sorted(points)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    if pts and abs(pts[0][0] - x) < 1e-9:
        return pts[0][1]
    return None
