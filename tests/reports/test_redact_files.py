"""redact_files: the last line of defence over every file a run wrote."""

from __future__ import annotations

import html
import json
from pathlib import Path

from reports import MASK, redact_files

SECRET = 'pa"ss<w&rd'


def test_every_spelling_of_a_secret_is_masked_and_skipped_names_are_left_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "allure").mkdir()
    (tmp_path / "hypothesis-db").mkdir()
    plain = tmp_path / "pytest.txt"
    xml = tmp_path / "allure" / "result.xml"
    data = tmp_path / "summary.json"
    kept = tmp_path / "hypothesis-db" / "entry"
    plain.write_text(f"login with {SECRET} failed")
    xml.write_text(f"<failure message='{html.escape(SECRET)}'/>")
    data.write_text(json.dumps({"error": SECRET}))
    kept.write_text(SECRET)
    changed = redact_files([tmp_path], [SECRET, ""], skip={"hypothesis-db"})
    assert sorted(changed) == sorted([plain, xml, data])
    for path in (plain, xml, data):
        text = path.read_text()
        assert MASK in text and "ss<w" not in text and "ss&lt;w" not in text
    assert kept.read_text() == SECRET
    assert redact_files([tmp_path / "missing.log"], [SECRET]) == []
