"""The README's support matrix is generated from the family table and must not go stale."""
from pathlib import Path

from cachekit.cache_core.families.support_matrix import END, START, support_matrix_markdown, with_matrix
from cachekit.cache_core.families.table import FAMILIES, METHODS

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_matrix_is_current():
    text = README.read_text()
    assert START in text and END in text
    assert with_matrix(text) == text, "README support matrix is stale: run `python3 tests/harness/update_readme.py`"


def test_matrix_has_a_row_per_family_and_a_column_per_method():
    table = support_matrix_markdown()
    for family in FAMILIES:
        assert f"| {family.name} |" in table
    for method in METHODS:
        assert method in table.splitlines()[0]
