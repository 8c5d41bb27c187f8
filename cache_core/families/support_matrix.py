"""The README's support matrix, generated from the family table (the single source of truth)."""
from __future__ import annotations

from .table import FAMILIES, METHODS

START = "<!-- support-matrix:start -->"
END = "<!-- support-matrix:end -->"


def support_matrix_markdown() -> str:
    """Families x methods as a Markdown table, followed by the reasons for each gap."""
    lines = ["| Family | " + " | ".join(METHODS) + " |", "|---" * (len(METHODS) + 1) + "|"]
    gaps = []
    for family in FAMILIES:
        lines.append(f"| {family.name} | " + " | ".join("yes" if m in family.methods else "no" for m in METHODS) + " |")
        missing = [m for m in METHODS if m not in family.methods]
        reasons = {family.unsupported.get(m, "not implemented yet") for m in missing}
        if len(missing) == len(METHODS) and len(reasons) == 1:
            gaps.append(f"- {family.name} (every method): {reasons.pop()}")
        else:
            gaps += [f"- {family.name} / {m}: {family.unsupported.get(m, 'not implemented yet')}" for m in missing]
    supported = {m: sum(m in f.methods for f in FAMILIES) for m in METHODS}
    lines.append("")
    lines.append("Families supported per method: " + ", ".join(f"{m} {n}/{len(FAMILIES)}" for m, n in supported.items()) + ".")
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
