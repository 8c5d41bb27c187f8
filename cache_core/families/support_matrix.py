"""The README's support matrix, generated from the family table and the methods' placements.

Each cell says how a method reaches the family with its default settings: block (the block stack),
model (the whole model output), attention (attention sites), cfg (the CFG part only), or no, with
the reason for every no. MagCache cells say "(calibrate)" where no published ratio table exists
for the family: the calibration node makes one.
"""
from __future__ import annotations

from .table import ATTENTION, COND_BATCH, FAMILIES, MAG_CACHE, OUTPUT, STACK, Family

NEW = " †"  # marks families that came after ComfyUI 0.3.64 (in 0.33, not in 0.3.60)
START = "<!-- support-matrix:start -->"
END = "<!-- support-matrix:end -->"

MECHANISMS = ((STACK, "block"), (OUTPUT, "model"), (ATTENTION, "attention"), (COND_BATCH, "cfg"))


def cell(spec, family: Family) -> tuple[str, str]:
    """(mechanism, reason): how `spec` at its default settings reaches `family`; mechanism "no" with a reason."""
    placed = spec.place(spec.config_type(), family)
    if isinstance(placed, str):
        return "no", placed
    label = " + ".join(name for site, name in MECHANISMS if site in placed)
    if spec.name == MAG_CACHE and (OUTPUT in placed or not _has_preset(family)):  # the published tables are block level
        label += " (calibrate)"
    return label, ""


def _has_preset(family: Family) -> bool:
    from ..ratios.presets import preset_families

    return family.name in preset_families()


def accelerated(families=FAMILIES) -> list[Family]:
    """Families that at least one method accelerates (the CFG estimate alone does not count)."""
    from ..methods import method_specs

    return [f for f in families if any(cell(spec, f)[0] not in ("no", "cfg") for spec in method_specs())]


def support_summary() -> str:
    """One line: families reached per method and accelerated at all (pytest's summary prints it)."""
    from ..methods import method_specs

    counts = ", ".join(f"{s.name} {sum(cell(s, f)[0] != 'no' for f in FAMILIES)}/{len(FAMILIES)}" for s in method_specs())
    return f"{counts}; accelerated by at least one method: {len(accelerated())}/{len(FAMILIES)}"


def support_matrix_markdown() -> str:
    """Families x methods as a Markdown table, followed by the reasons for each gap."""
    from ..methods import method_specs

    specs = method_specs()
    lines = ["| Family | " + " | ".join(s.name for s in specs) + " |", "|---" * (len(specs) + 1) + "|"]
    gaps = []
    for family in FAMILIES:
        cells = [cell(spec, family) for spec in specs]
        lines.append(f"| {family.name}{NEW if family.since_033 else ''} | " + " | ".join(c[0] for c in cells) + " |")
        missing = [(spec.name, reason) for spec, (label, reason) in zip(specs, cells) if label == "no"]
        reasons = {reason for _, reason in missing}
        if len(missing) == len(specs) and len(reasons) == 1:
            gaps.append(f"- {family.name} (every method): {reasons.pop()}")
        else:
            gaps += [f"- {family.name} / {name}: {reason}" for name, reason in missing]
    counts = {s.name: sum(cell(s, f)[0] != "no" for f in FAMILIES) for s in specs}
    lines.append("")
    lines.append("Families reached per method: " + ", ".join(f"{m} {n}/{len(FAMILIES)}" for m, n in counts.items())
                 + f"; accelerated by at least one method: {len(accelerated())}/{len(FAMILIES)}.")
    lines.append("† came after ComfyUI 0.3.64: in ComfyUI 0.33, not in 0.3.60. Every other row holds for both releases.")
    lines.append("Cells: block = the block stack (ComfyUI block patches), model = the whole model output (DIFFUSION_MODEL "
                 "wrapper), attention = attention sites, cfg = the negative branch estimated from the positive one.")
    if gaps:
        lines += ["", "Unsupported combinations (the model passes through unchanged, with one warning):", *gaps]
    lines.append("")
    lines.append("Any other model family passes through every CacheKit node unchanged, with one warning naming it.")
    return "\n".join(lines)


def with_matrix(readme: str) -> str:
    """`readme` with the text between the support-matrix markers replaced by the current matrix."""
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{support_matrix_markdown()}\n{END}{tail}"
