"""The README's configuration table names every setting, and only real ones."""

from __future__ import annotations

import re
from pathlib import Path

from kadence.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_settings(text: str) -> set[str]:
    """``KADENCE_*`` names in the first column of the table under "## Configuration"."""
    section = text.split("\n## Configuration", 1)[1].split("\n## ", 1)[0] if "\n## Configuration" in text else ""
    return set(re.findall(r"^\|\s*`(KADENCE_[A-Z0-9_]+)`", section, flags=re.MULTILINE))


def test_every_setting_is_in_the_readme_configuration_table() -> None:
    expected = {f"KADENCE_{name.upper()}" for name in Settings.model_fields}
    documented = documented_settings(README.read_text())
    assert not expected - documented, f"add to the README's Configuration table: {sorted(expected - documented)}"
    unknown = sorted(documented - expected)
    assert not unknown, f"the README documents settings that do not exist: {unknown}"
