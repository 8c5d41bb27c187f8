"""Writing the benchmark's results: bench/results.md (table and targets) and bench/results.png (plot)."""
from __future__ import annotations

import math
import platform
from pathlib import Path
from typing import Any

import torch

BLOCK_METHODS = ("FirstBlockCache", "MagCache", "TaylorSeer")

NOTES = [
    "- Ideal speedup counts the multiply-adds of linear layers only; attention kernels are not counted (at 68 tokens "
    "they are a small share of the work). CacheKit's Pyramid Attention Broadcast on Flux reuses the attention kernel's "
    "output while the q/k/v projections still run, so its ideal reads about 1.00x although it saves kernel time; "
    "diffusers' PAB skips the whole attention module, projections included.",
    "- Windows are equal on both sides: CacheKit's start/end percent are converted to diffusers' 0-1000 timestep "
    "ranges through ComfyUI's own percent -> sigma mapping of this model.",
    "- diffusers' FasterCache estimates the unconditional branch in image layout (tensor_format) and fails on Flux's "
    "packed tokens, so its CFG part cannot run on this model; the attention part alone (is_guidance_distilled=True) "
    "is compared with CacheKit's attention part alone.",
    "- MagCache uses ratios calibrated on this model by CacheKit's calibration node (first prompt, same steps); "
    "diffusers' MagCache gets the same cond table.",
    "- The model is small (about 3M parameters, 68 tokens), so on a CPU the per-call Python work of the samplers is a "
    "large share of every step; `--speed-only` measures overhead on large architectures.",
]


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 2**20:.2f} MiB"


def _row(r: Any) -> str:
    if r.note:
        return f"| {r.group} | {r.method} | {r.setting} | – | – | – | – | – | – | {r.note} |"
    p, s = r.quality()
    psnr_text = "identical" if math.isinf(p) else f"{p:.2f}"
    memory = _fmt_bytes(r.gpu_bytes) if r.gpu_bytes is not None else _fmt_bytes(r.cache_bytes)
    steps = r.extra.get("steps", "")
    return (f"| {r.group} | {r.method} | {r.setting} | {r.seconds:.3f} | {r.speedup:.2f}x | {r.ideal:.2f}x | "
            f"{r.speedup / r.ideal:.0%} | {psnr_text} | {s:.4f} | {memory}{' · ' + steps + ' steps' if steps else ''} |")


def _targets(results: list[Any]) -> list[str]:
    measured = [r for r in results if not r.note and r.method != "uncached"]
    ours = [r for r in measured if r.group == "CacheKit"]
    lines = []
    # 1. overhead
    worst = {m: min((r for r in ours if r.method == m), key=lambda r: r.speedup / r.ideal) for m in {r.method for r in ours}}
    missed = {m: r for m, r in worst.items() if r.speedup / r.ideal < 0.95}
    lines.append(f"- **Overhead (realized ≥ 95% of ideal for every method):** {'met' if not missed else 'not met'}. "
                 + "Lowest per method: " + ", ".join(f"{m} {r.speedup / r.ideal:.0%} ({r.setting})" for m, r in sorted(worst.items())) + ".")
    # 2. quality vs diffusers at equal setting, and vs EasyCache/LazyCache at similar speed
    pairs = []
    for r in ours:
        twin = next((d for d in measured if d.group == "diffusers" and d.method == r.method and d.setting == r.setting.replace(" (default)", "")), None)
        if twin is not None:
            pairs.append((r, twin))
    worse = [(r, d) for r, d in pairs if r.quality()[0] + 0.5 < d.quality()[0] and r.ideal <= d.ideal * 1.02]
    lines.append(f"- **Quality at equal setting no worse than diffusers** (PSNR more than 0.5 dB lower while skipping no more work "
                 f"counts as worse): {'met' if not worse else 'not met'}. "
                 + "; ".join(f"{r.method} {r.setting.replace(' (default)', '')}: {r.quality()[0]:.1f} dB at {r.ideal:.2f}x ideal "
                             f"vs {d.quality()[0]:.1f} dB at {d.ideal:.2f}x" for r, d in pairs) + ".")
    core = [r for r in measured if r.group == "ComfyUI core"]
    verdicts = []
    for method in BLOCK_METHODS:
        mine = [r for r in ours if r.method == method]
        beaten = []
        for c in core:
            near = [r for r in mine if r.ideal >= c.ideal * 0.9]
            if near:
                beaten.append(max(r.quality()[0] for r in near) > c.quality()[0])
        if beaten:
            verdicts.append(f"{method} {sum(beaten)}/{len(beaten)}")
    lines.append("- **Better than EasyCache/LazyCache for the block-level methods** (higher PSNR at ≥ 90% of their ideal speedup): "
                 + (", ".join(verdicts) if verdicts else "no comparable settings") + " of the EasyCache/LazyCache settings beaten.")
    fast = [r for r in ours if r.speedup > 2.0 and r.quality()[0] >= 30.0]
    lines.append(f"- **Over 2x faster with PSNR ≥ 30 dB:** {'met: ' + ', '.join(f'{r.method} {r.setting} ({r.speedup:.2f}x, {r.quality()[0]:.1f} dB)' for r in fast) if fast else 'not met'}.")
    return lines


def plot(results: list[Any], path: Path) -> None:
    """PSNR against speedup, one point per method and setting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=110)
    markers = {"CacheKit": "o", "diffusers": "x", "ComfyUI core": "s"}
    colors = {}
    palette = plt.get_cmap("tab10")
    for r in results:
        if r.note or r.method == "uncached":
            continue
        p = min(r.quality()[0], 60.0)
        color = colors.setdefault(r.method, palette(len(colors) % 10))
        ax.scatter(r.speedup, p, marker=markers[r.group], color=color, s=48 if r.group == "CacheKit" else 40,
                   label=f"{r.group}: {r.method}")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower left", ncol=2)
    ax.axhline(30, color="#999", lw=0.8, ls="--")
    ax.axvline(2, color="#999", lw=0.8, ls="--")
    ax.set_xlabel("wall-clock speedup vs uncached (same process)")
    ax.set_ylabel("PSNR vs uncached (dB, capped at 60)")
    ax.set_title("CacheKit benchmark: quality against speed (trained benchmark model)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_report(results: list[Any], out: Path, steps: int, repeats: int) -> None:
    """Write results.md and results.png into `out`."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    lines = [
        "# CacheKit benchmark results",
        "",
        f"Made by `python3 bench/run_benchmark.py` on {device}, torch {torch.__version__}: the trained benchmark model "
        f"(`bench/model/`, 8 samples of 4 classes, 32x32, {steps} Euler steps, simple schedule, CFG 4), median of {repeats} timed runs "
        "after an untimed counting run. Speedup and quality are against the uncached run of the same implementation "
        "(ComfyUI for CacheKit and EasyCache/LazyCache, diffusers for diffusers' hooks). Ideal = linear-layer work uncached / cached; "
        "overhead = speedup / ideal. Memory: cache bytes held (CacheKit's run report) on CPU, peak GPU memory added on a GPU.",
        "",
        "![quality against speedup](results.png)",
        "",
        "| Implementation | Method | Setting | Time (s) | Speedup | Ideal | Realized/ideal | PSNR (dB) | SSIM | Memory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.method == "uncached" and r.group != "ComfyUI" and r.group != "diffusers":
            continue
        if r.method == "uncached":
            lines.append(f"| {r.group} | uncached | – | {r.seconds:.3f} | 1.00x | 1.00x | – | – | – | – |")
        else:
            lines.append(_row(r))
    lines += ["", "## Targets", "", *_targets(results), "", "## How to read it", "", *NOTES, ""]
    (out / "results.md").write_text("\n".join(lines))
    plot(results, out / "results.png")
    print(f"wrote {out / 'results.md'} and {out / 'results.png'}")
