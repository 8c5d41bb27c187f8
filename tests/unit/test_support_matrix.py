"""The README's support matrix is generated from the family table and must not go stale."""
from pathlib import Path

from cachekit.cache_core.families.support_matrix import END, NEW, START, accelerated, cell, support_matrix_markdown, with_matrix
from cachekit.cache_core.families.table import FAMILIES, METHODS, family_named
from cachekit.cache_core.methods import method_specs

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_matrix_is_current():
    text = README.read_text()
    assert START in text and END in text
    assert with_matrix(text) == text, "README support matrix is stale: run `python3 tests/harness/update_readme.py`"


def test_matrix_has_a_row_per_family_and_a_column_per_method():
    table = support_matrix_markdown()
    for family in FAMILIES:
        assert f"| {family.name}{NEW if family.since_033 else ''} |" in table
    for method in METHODS:
        assert method in table.splitlines()[0]


def test_the_2026_families_people_run_most_are_cached_at_block_level_by_the_block_methods():
    specs = {spec.name: spec for spec in method_specs()}
    for name in ("Flux2", "Lumina2 / Z-Image", "QwenImage", "Wan", "HunyuanVideo15", "LTX-2"):
        family = family_named(name)
        for method in ("FirstBlockCache", "MagCache", "TaylorSeer", "HybridBlockCache"):
            assert cell(specs[method], family)[0].startswith("block"), (name, method)


def test_at_least_nine_in_ten_families_are_accelerated():
    assert len(accelerated()) >= 0.9 * len(FAMILIES)


def test_every_no_has_a_reason():
    for spec in method_specs():
        for family in FAMILIES:
            label, reason = cell(spec, family)
            assert label != "no" or reason, (spec.name, family.name)
