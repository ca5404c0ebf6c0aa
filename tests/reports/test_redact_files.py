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


def test_a_short_secret_is_masked_where_it_stands_alone_not_inside_words(tmp_path: Path) -> None:
    report = tmp_path / "summary.json"
    report.write_text(json.dumps({"examples": 3, "protocol": "xmlrpc", "error": "login x failed"}))
    assert redact_files([report], ["x"]) == [report]
    assert json.loads(report.read_text()) == {
        "examples": 3,
        "protocol": "xmlrpc",
        "error": f"login {MASK} failed",
    }


def test_a_long_secret_is_masked_even_inside_a_longer_word(tmp_path: Path) -> None:
    log = tmp_path / "pytest.log"
    log.write_text("session opened with hunter2hunter2xyz")
    redact_files([log], ["hunter2hunter2"])
    assert log.read_text() == f"session opened with {MASK}xyz"
