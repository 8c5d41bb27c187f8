"""Writing the benchmark's results: bench/<stem>.md (fronts, targets, every row) and bench/<stem>.png (fronts).

The findings section of an existing <stem>.md (between the findings markers) is written by hand for a
given run and kept when the file is regenerated; everything else is generated from the run.
"""
from __future__ import annotations

import math
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from pareto import front, interpolate, margins, quality_at

FRONT_GRID = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)
TARGET_GRID = tuple(1.5 + 0.25 * i for i in range(11))  # 1.5x .. 4x
MARGIN_AT = (2.0, 3.0)
MARGIN_DB = 2.0
COMPETITORS = ("cache-dit", "diffusers", "LazyCache")
IMPLEMENTATIONS = ("CacheKit", "cache-dit", "diffusers", "LazyCache", "EasyCache", "EasyCache (input copied)")
STYLE = {  # colour, marker
    "CacheKit": ("#d62728", "o"),
    "CacheKit Hybrid Block Cache only": ("#ff9896", "D"),
    "cache-dit": ("#1f77b4", "s"),
    "diffusers": ("#2ca02c", "^"),
    "LazyCache": ("#9467bd", "v"),
    "EasyCache": ("#8c564b", "x"),
    "EasyCache (input copied)": ("#e377c2", "P"),
}
PLOT_PSNR_CAP = 50.0
FINDINGS_START, FINDINGS_END = "<!-- findings:start -->", "<!-- findings:end -->"


def _fmt(value: Optional[float], digits: int = 2, suffix: str = "") -> str:
    return "–" if value is None else f"{value:.{digits}f}{suffix}"


def _fmt_bytes(n: Optional[int]) -> str:
    return "n/a" if n is None else f"{n / 2**20:.2f} MiB"


def _rows(results: Sequence[Any]) -> list[Any]:
    return [r for r in results if r.ok]


def points(results: Sequence[Any], implementation: str, axis: str, metric: int) -> list[tuple[float, float, Any]]:
    """(speedup, quality, result) of one implementation's settings; axis "ideal" or "realized"; metric 0 PSNR, 1 SSIM."""
    if implementation == "CacheKit Hybrid Block Cache only":
        rows = [r for r in _rows(results) if r.group == "CacheKit" and r.method == "HybridBlockCache"]
    else:
        rows = [r for r in _rows(results) if r.implementation == implementation]
    return [((r.ideal if axis == "ideal" else r.speedup), r.quality()[metric], r) for r in rows]


def _xy(pts: Sequence[tuple[float, float, Any]]) -> list[tuple[float, float]]:
    return [(x, y) for x, y, _ in pts]


def _best_at(pts: Sequence[tuple[float, float, Any]], x: float) -> Optional[tuple[float, Any]]:
    reaching = [(y, r) for px, y, r in pts if px >= x - 1e-9]
    return max(reaching, key=lambda t: t[0]) if reaching else None


def front_table(results: Sequence[Any], axis: str, metric: int) -> list[str]:
    """Each implementation's front read at FRONT_GRID: the best quality at that speedup or more, and its setting."""
    names = [n for n in (*IMPLEMENTATIONS[:1], "CacheKit Hybrid Block Cache only", *IMPLEMENTATIONS[1:]) if points(results, n, axis, metric)]
    label = "PSNR (dB)" if metric == 0 else "SSIM"
    lines = [f"| {label} at ≥ x {axis} speedup | " + " | ".join(f"{x:g}x" for x in FRONT_GRID) + " |",
             "|---|" + "---|" * len(FRONT_GRID)]
    for name in names:
        pts = points(results, name, axis, metric)
        cells = []
        for x in FRONT_GRID:
            best = _best_at(pts, x)
            cells.append("–" if best is None else f"{best[0]:.{2 if metric == 0 else 3}f} <sub>{_short(best[1])}</sub>")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _short(r: Any) -> str:
    method = {"FirstBlockCache": "FBC", "HybridBlockCache": "Hybrid", "TaylorSeer": "TaylorSeer", "MagCache": "MagCache",
              "DBCache": "DBCache", "FasterCache": "FasterCache", "PAB": "PAB"}.get(r.method, r.method)
    if r.group == "ComfyUI core":
        return r.setting
    return f"{method} {r.setting.replace(' (default)', '')}"


def target_lines(results: Sequence[Any]) -> tuple[list[str], dict[str, Any]]:
    """The three targets, each met or not, with the measured margins."""
    lines: list[str] = []
    verdict: dict[str, Any] = {}
    for metric, name in ((0, "PSNR"), (1, "SSIM")):
        ours = _xy(points(results, "CacheKit", "ideal", metric))
        theirs = {n: _xy(points(results, n, "ideal", metric)) for n in COMPETITORS if points(results, n, "ideal", metric)}
        rows = margins(ours, theirs, TARGET_GRID)
        unit = " dB" if metric == 0 else ""
        digits = 2 if metric == 0 else 4
        below = [row for row in rows if row["margin"] is not None and row["margin"] < 0]
        uncovered = [row for row in rows if row["ours"] is None]
        met = not below and not uncovered
        verdict[f"front_{name}"] = met
        worst = min((row for row in rows if row["margin"] is not None), key=lambda row: row["margin"], default=None)
        detail = ", ".join(
            f"{row['speedup']:g}x: {_fmt(row['ours'], digits)} vs {_fmt(row['best'], digits)} ({row['best_name'] or 'none'})"
            + (f", {row['margin']:+.{digits}f}{unit}" if row["margin"] is not None else "")
            for row in rows)
        below_text = ", ".join(f"{row['speedup']:g}x ({row['margin']:+.{digits}f}{unit} vs {row['best_name']})" for row in below)
        uncovered_text = ", ".join(f"{row['speedup']:g}x" for row in uncovered)
        lines.append(
            f"- **CacheKit's {name} front at or above the best of {', '.join(COMPETITORS)} at every ideal speedup from 1.5x to 4x "
            f"— {'met' if met else 'not met'}.** "
            + (f"Below at {below_text}. " if below else "")
            + (f"No CacheKit setting reaches {uncovered_text}. " if uncovered else "")
            + (f"Smallest margin {worst['margin']:+.{digits}f}{unit} at {worst['speedup']:g}x. " if worst else "")
            + f"Per speedup (CacheKit vs best other): {detail}.")
        if metric == 0:
            at = {row["speedup"]: row for row in rows}
            gaps = [at[x] for x in MARGIN_AT]
            ok = all(row["margin"] is not None and row["margin"] >= MARGIN_DB for row in gaps)
            verdict["margin"] = ok
            lines.append(
                f"- **At least {MARGIN_DB:g} dB above the best of them at {' and '.join(f'{x:g}x' for x in MARGIN_AT)} ideal — "
                f"{'met' if ok else 'not met'}.** "
                + "; ".join(f"{row['speedup']:g}x: CacheKit {_fmt(row['ours'])} dB, best other {_fmt(row['best'])} dB ({row['best_name']}), "
                            f"margin {_fmt(row['margin'], 2, ' dB')}"
                            + ("" if row["margin"] is None or row["margin"] >= MARGIN_DB else f" — short by {MARGIN_DB - row['margin']:.2f} dB")
                            for row in gaps) + ".")
    # realized / ideal of the hybrid node against FirstBlockCache's at the same ideal speedup
    hybrid = [r for r in _rows(results) if r.method == "HybridBlockCache" and r.group == "CacheKit" and r.timed_ideal > 1.05]
    fbc = [r for r in _rows(results) if r.method == "FirstBlockCache" and r.group == "CacheKit"]
    curve = [(1.0, 1.0)] + [(r.timed_ideal, r.speedup) for r in fbc]
    pairs = []
    for r in hybrid:
        fbc_speedup = interpolate(curve, r.timed_ideal)
        if fbc_speedup is not None:
            pairs.append((r, r.realized_over_ideal, fbc_speedup / r.timed_ideal))
    if pairs:
        diffs = [h - f for _, h, f in pairs]
        better = sum(d >= 0 for d in diffs)
        ok = statistics.median(diffs) >= 0
        verdict["overhead"] = ok
        h_med = statistics.median(h for _, h, _ in pairs)
        f_med = statistics.median(f for _, _, f in pairs)
        lines.append(
            f"- **Realized/ideal of the Hybrid Block Cache at least as good as FirstBlockCache's — {'met' if ok else 'not met'}.** "
            f"Compared at equal ideal speedup (FirstBlockCache's measured realized speedups interpolated at each hybrid setting's ideal, "
            f"within FirstBlockCache's measured range {min(r.timed_ideal for r in fbc):.2f}x-{max(r.timed_ideal for r in fbc):.2f}x; "
            f"ideal over the timed prompts): "
            f"{len(pairs)} hybrid settings, median realized/ideal {h_med:.0%} (hybrid) vs {f_med:.0%} (FirstBlockCache at the same ideal), "
            f"median difference {statistics.median(diffs):+.1%}; the hybrid is at least as good in {better}/{len(pairs)}.")
    else:
        verdict["overhead"] = None
        lines.append("- **Realized/ideal of the Hybrid Block Cache vs FirstBlockCache:** no hybrid setting within FirstBlockCache's "
                     "measured ideal range.")
    probes = [r for r in _rows(results) if "overhead probe" in r.setting]
    if probes:
        lines.append("  Overhead probes (a threshold no step passes, so everything is computed and the node's bookkeeping is all "
                     "that differs from uncached): " + "; ".join(
                         f"{r.method} {r.setting.replace(' (overhead probe)', '')}: {r.speedup:.3f}x realized at {r.timed_ideal:.3f}x ideal "
                         f"({(1 / r.speedup - 1 / r.timed_ideal) * 100:+.1f}% of the uncached time)" for r in probes) + ".")
    return lines, verdict


def node_overhead_table(results: Sequence[Any]) -> list[str]:
    """Realized/ideal per CacheKit node (and for the others, for reference), and against the ceiling."""
    lines = ["| Implementation / node | Settings | Ideal range | Realized/ideal: median (min-max) | Realized/ceiling: median (min-max) |",
             "|---|---|---|---|---|"]
    groups: dict[str, list[Any]] = {}
    for r in _rows(results):
        if r.timed_ideal <= 1.05:
            continue  # nothing skipped in block work: the ratio only shows timing noise and attention-only savings
        key = f"CacheKit {r.method}" if r.group == "CacheKit" else r.implementation
        groups.setdefault(key, []).append(r)
    order = ["CacheKit FirstBlockCache", "CacheKit HybridBlockCache"] + sorted(k for k in groups if k.startswith("CacheKit")) + \
        ["cache-dit", "diffusers", "LazyCache", "EasyCache", "EasyCache (input copied)"]
    seen = set()
    for key in order:
        if key in seen or key not in groups:
            continue
        seen.add(key)
        rows = groups[key]
        ratio = [r.realized_over_ideal for r in rows]
        ceil = [r.speedup / r.ceiling for r in rows]
        lines.append(f"| {key} | {len(rows)} | {min(r.timed_ideal for r in rows):.2f}x-{max(r.timed_ideal for r in rows):.2f}x | "
                     f"{statistics.median(ratio):.0%} ({min(ratio):.0%}-{max(ratio):.0%}) | "
                     f"{statistics.median(ceil):.0%} ({min(ceil):.0%}-{max(ceil):.0%}) |")
    return lines


TWINS = [  # (CacheKit hybrid setting, cache-dit setting) with the same segments, threshold, warmup, reuse cap and predictor
    ("F1B0 taylorseer R0.12 MC3 (default)", "F1B0 W3 MC3 R0.12 + TaylorSeer"),
]


def twin_lines(results: Sequence[Any]) -> list[str]:
    rows = {(r.group, r.setting): r for r in _rows(results)}
    lines = []
    for ours, theirs in TWINS:
        a, b = rows.get(("CacheKit", ours)), rows.get(("cache-dit", theirs))
        if a and b:
            lines.append(f"- Same settings, CacheKit Hybrid `{ours}` vs cache-dit `{theirs}`: ideal {a.ideal:.2f}x vs {b.ideal:.2f}x, "
                         f"PSNR {a.quality()[0]:.2f} vs {b.quality()[0]:.2f} dB, SSIM {a.quality()[1]:.4f} vs {b.quality()[1]:.4f}, "
                         f"steps with the middle computed {a.extra.get('steps', '?')} (CacheKit's report).")
    return lines


def _row(r: Any) -> str:
    if r.note:
        return f"| {r.group} | {r.method} | {r.setting} | – | – | – | – | – | – | – | – | {r.note} |"
    p, s = r.quality()
    psnr_text = "identical" if r.identical else f"{p:.2f}"
    memory = _fmt_bytes(max(0, r.gpu_bytes - (r.reference.gpu_bytes or 0))) + " added" if r.gpu_bytes is not None else (
        _fmt_bytes(r.cache_bytes) if r.cache_bytes is not None else "n/a")
    extra = []
    if "steps" in r.extra:
        extra.append(f"{r.extra['steps']} steps")
    if "reached_speedup" in r.extra:
        extra.append(f"reported reached {r.extra['reached_speedup']:.2f}x")
    return (f"| {r.group} | {r.method} | {r.setting} | {r.seconds:.3f} | {r.speedup:.2f}x | {r.ideal:.2f}x | {r.timed_ideal:.2f}x | "
            f"{r.realized_over_ideal:.0%} | {r.speedup / r.ceiling:.0%} | {psnr_text} | {s:.4f} | {memory}{' · ' + ', '.join(extra) if extra else ''} |")


def plot(results: Sequence[Any], path: Path, title: str) -> None:
    """PSNR and SSIM against ideal and realized speedup: every setting as a faint point, each implementation's front as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5), dpi=100)
    names = ["CacheKit", "CacheKit Hybrid Block Cache only", "cache-dit", "diffusers", "LazyCache", "EasyCache", "EasyCache (input copied)"]
    for col, axis in enumerate(("ideal", "realized")):
        for row, metric in enumerate((0, 1)):
            ax = axes[row][col]
            for name in names:
                pts = points(results, name, axis, metric)
                if not pts:
                    continue
                color, marker = STYLE[name]
                xy = [(x, min(y, PLOT_PSNR_CAP) if metric == 0 else y) for x, y, _ in pts]
                if name != "CacheKit Hybrid Block Cache only":
                    ax.scatter([x for x, _ in xy], [y for _, y in xy], color=color, marker=marker, s=18, alpha=0.35, linewidths=1)
                f = front(xy)
                # the step front: the best quality at this speedup or more
                steps_x, steps_y = [], []
                for i, (x, y) in enumerate(f):
                    left = min(1.0, x) if i == 0 else f[i - 1][0]
                    steps_x += [left, x]
                    steps_y += [y, y]
                ax.plot(steps_x, steps_y, color=color, lw=2.2 if name == "CacheKit" else 1.6,
                        ls="--" if name == "CacheKit Hybrid Block Cache only" else "-", label=f"{name} (front)")
                ax.scatter([x for x, _ in f], [y for _, y in f], color=color, marker=marker, s=36, zorder=3)
            ax.set_xscale("log")
            ticks = [0.5, 0.75, 1, 1.5, 2, 3, 4, 6, 8]
            ax.set_xticks(ticks)
            ax.set_xticklabels([f"{t:g}x" for t in ticks])
            lowest = min([r.speedup for r in _rows(results)] + [1.0]) if axis == "realized" else 1.0
            ax.set_xlim(0.95 * lowest, 9)
            if axis == "ideal":
                for x in MARGIN_AT:
                    ax.axvline(x, color="#bbb", lw=0.8, ls=":")
                ax.axvspan(1.5, 4.0, color="#f4f4f4", zorder=0)
            ax.set_xlabel(f"{'ideal speedup (transformer-block work uncached / computed)' if axis == 'ideal' else 'realized speedup (wall clock, same run)'}")
            ax.set_ylabel(f"PSNR vs uncached (dB, mean over prompts, drawn ≤ {PLOT_PSNR_CAP:g})" if metric == 0 else "SSIM vs uncached (mean over prompts)")
            ax.grid(alpha=0.3, which="both")
            if metric == 1:
                ax.set_ylim(max(0.0, ax.get_ylim()[0]), 1.0)
    axes[0][0].legend(fontsize=8, loc="upper right")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _existing_findings(path: Path) -> Optional[str]:
    if not path.is_file():
        return None
    text = path.read_text()
    match = re.search(re.escape(FINDINGS_START) + r"(.*?)" + re.escape(FINDINGS_END), text, re.S)
    return match.group(1).strip("\n") if match else None


def write_report(results: Sequence[Any], out: Path, stem: str, meta: dict[str, Any]) -> None:
    """Write <stem>.md and <stem>.png into `out`."""
    spec = meta["model"]
    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if gpu else f"CPU ({platform.processor() or platform.machine()}, {meta['threads']} threads)"
    base = {r.group: r for r in results if r.method == "uncached"}
    comfy_base, diffusers_base = base["ComfyUI"], base["diffusers"]
    target, verdict = target_lines(results)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = [
        f"# CacheKit benchmark results ({spec.name} model{', quick run' if meta['quick'] else ''})",
        "",
        f"Made by `python3 bench/run_benchmark.py{' --model ' + spec.name if spec.name != 'deep' else ''}{' --quick' if meta['quick'] else ''}` "
        f"on {when}, {device}, torch {torch.__version__}, ComfyUI {meta['comfyui']}, diffusers {meta['diffusers']}, cache-dit "
        f"{meta['cache_dit']}; the run took {meta['seconds'] / 60:.1f} minutes.",
        "",
        f"Model: `{spec.checkpoint.relative_to(spec.checkpoint.parents[1])}` (Flux architecture, {spec.describe()}, "
        f"{meta['params'] / 1e6:.1f}M parameters), trained by `bench/train_model.py --model {spec.name}` on class-conditional "
        f"procedural images, loaded through ComfyUI's Flux classes and, the same weights, in diffusers' FluxTransformer2DModel "
        f"(twice: one copy for diffusers' hooks, a fresh copy per cache-dit setting). {meta['samples']} prompts "
        f"({meta['classes']} classes x {meta['samples'] // meta['classes']} seeds), {meta['image']}x{meta['image']} RGB ({meta['tokens']} tokens), "
        f"{meta['steps']} Euler steps, simple schedule, CFG {meta['cfg']:g} (cond and uncond batched), the same sigmas, prompts and noise "
        f"on both sides; uncached ComfyUI and diffusers differ by at most {meta['difference']:.1e} in the latents.",
        "",
        "- **Ideal speedup** = transformer-block work of the uncached run / of this run: the multiply-adds of every block "
        "actually run (its linear layers) and of every attention kernel actually called, counted with hooks in an untimed run "
        "that also gives the images (`bench/block_work.py`); the same definition for every implementation. Predictor arithmetic, "
        "embedders and the final layer are not block work.",
        f"- **Realized speedup** = wall-clock time uncached / cached in the same process, each the median of {meta['repeats']} timed "
        f"runs over {meta['timed_samples']} prompts (one per class), cached and uncached runs alternating. "
        "**Ceiling**: the speedup of a zero-overhead cache doing the same block work, given the implementation's measured "
        f"time outside the blocks (every block skipped: ComfyUI {comfy_base.floor_seconds:.3f} s of {comfy_base.seconds:.3f} s, "
        f"{comfy_base.floor_seconds / comfy_base.seconds:.0%}; diffusers {diffusers_base.floor_seconds:.3f} s of "
        f"{diffusers_base.seconds:.3f} s, {diffusers_base.floor_seconds / diffusers_base.seconds:.0%}).",
        "- **Quality**: PSNR and SSIM of the decoded RGB images against the same implementation's uncached images, averaged over "
        f"the {meta['samples']} prompts (PSNR capped at 100 dB per image). CacheKit, EasyCache and LazyCache against ComfyUI "
        "uncached; diffusers and cache-dit against diffusers uncached.",
        "- **Fronts**: per implementation, the settings no other of its settings beats in both speedup and quality; read at x, "
        "the best quality among its settings with speedup ≥ x (no interpolation). CacheKit's front is over all its nodes.",
        "",
        "![quality against speedup](" + f"{stem}.png" + ")",
        "",
        "## Targets",
        "",
        *target,
        "",
        "## Fronts",
        "",
        "Best quality at that speedup or more, and the setting that gives it.",
        "",
        *front_table(results, "ideal", 0),
        "",
        *front_table(results, "ideal", 1),
        "",
        *front_table(results, "realized", 0),
        "",
        *front_table(results, "realized", 1),
        "",
        "## Realized / ideal per node",
        "",
        "Settings that skip block work (ideal > 1.05x). Realized/ceiling takes out the implementation's own work outside the "
        "blocks, which no block cache can skip: what is left is the cache's own cost (and timing noise).",
        "",
        *node_overhead_table(results),
        "",
        *twin_lines(results),
        "",
        "## Findings",
        "",
        FINDINGS_START,
        _existing_findings(out / f"{stem}.md") or "(not written yet for this run)",
        FINDINGS_END,
        "",
        "## Every setting",
        "",
        "Time: median of the timed runs (timed prompts only). Ideal: all prompts; ideal (timed): the timed prompts, which "
        "realized/ideal and the ceiling use.",
        "",
        "| Implementation | Method | Setting | Time (s) | Speedup | Ideal | Ideal (timed) | Realized/ideal | Realized/ceiling | PSNR (dB) | SSIM | Memory |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.method == "uncached":
            lines.append(f"| {r.group} | uncached | – | {r.seconds:.3f} | 1.00x | 1.00x | 1.00x | – | – | – | – | "
                         f"{_fmt_bytes(r.gpu_bytes) + ' peak' if r.gpu_bytes is not None else '–'} |")
        else:
            lines.append(_row(r))
    lines += ["", "## How the implementations were driven", "", *NOTES, ""]
    (out / f"{stem}.md").write_text("\n".join(lines))
    plot(results, out / f"{stem}.png", f"CacheKit benchmark, {spec.name} model ({spec.describe()}), {meta['steps']} steps, CFG {meta['cfg']:g}")
    print(f"wrote {out / (stem + '.md')} and {out / (stem + '.png')}")


NOTES = [
    "- CacheKit nodes and ComfyUI core's EasyCache / LazyCache: the node's own apply on the ModelPatcher, then "
    "`comfy.sample.sample_custom` (what SamplerCustom runs) with Euler; one sampling run per prompt.",
    "- diffusers' hooks: `enable_cache(config)` on the FluxTransformer2DModel, a pipeline-free Euler loop with batched CFG, "
    "the hooks' state reset per prompt (`_reset_stateful_cache`, as a pipeline does), one `cache_context`. PAB / FasterCache "
    "windows are CacheKit's start/end percent converted through ComfyUI's percent -> sigma mapping. diffusers' TaylorSeer by "
    "default predicts only attention modules; the `whole blocks` rows give it `cache_identifiers` on every block (what CacheKit's "
    "blocks mode skips), and its default is listed too.",
    "- cache-dit: `cache_dit.enable_cache(transformer, cache_config=DBCacheConfig(...), calibrator_config=...)` on a fresh "
    "copy of the diffusers model per setting. cache-dit recognises FluxTransformer2DModel (its registered Flux adapter): the "
    "double and single blocks form one stack of Fn / middle / Bn blocks, its own patched Flux forward, and a persistent "
    "context for transformer-only use. `cache_dit.refresh_context(transformer, cache_config=..., calibrator_config=...)` "
    "before every prompt starts a new generation (num_inference_steps is set as well). SCM masks come from "
    "`cache_dit.steps_mask(total_steps, mask_policy)`. Labels follow cache-dit's tag: F = Fn_compute_blocks, B = "
    "Bn_compute_blocks, W = max_warmup_steps, I = warmup_interval, MC = max_continuous_cached_steps, R = residual_diff_threshold; "
    "S/M/F/U are its documented presets.",
    "- Hybrid Block Cache labels: F = front_blocks, B = back_blocks, predictor, R = residual_diff_threshold, MC = "
    "max_continuous_cached_steps (MC- = no limit), SCM = steps_computation_mask and policy, target = target_speedup "
    "(quality-budget mode); warmup_steps 3 unless W is given.",
    "- MagCache uses ratios calibrated on this model by CacheKit's calibration node (first prompt, same steps); diffusers' "
    "MagCache gets the same cond table.",
    "- Denormal floats are flushed (`torch.set_flush_denormal(True)`) for every implementation: the small trained models "
    "produce denormals that made CPU runs many times slower.",
]
