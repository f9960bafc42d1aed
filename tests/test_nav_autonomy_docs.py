"""docs/autonomy.md shows the current transition table and thresholds (docs cannot drift)."""

from __future__ import annotations

from pathlib import Path

from intball_nav.autonomy.modes import Mode, transition_table_markdown
from intball_nav.autonomy.params import load_autonomy_params

DOC = Path(__file__).resolve().parents[1] / "docs" / "autonomy.md"


def test_doc_holds_the_transition_table():
    assert transition_table_markdown() in DOC.read_text()


def test_doc_names_every_mode_and_the_thresholds():
    text = DOC.read_text()
    for mode in Mode:
        assert f"`{mode}`" in text
    b = load_autonomy_params().battery
    for level in (b.warn_level, b.go_home_level, b.refuse_motion_level):
        assert f"**{100 * level:.0f} %**" in text
