"""Report renderers: records in, files out."""

from reports.files import atomic_write_bytes, atomic_write_text
from reports.html import HTML_FILE, render_html, write_html
from reports.matrix import (
    MATRIX_HTML_FILE,
    MATRIX_MARKDOWN_FILE,
    Matrix,
    build_matrix,
    cell_status,
    matrix_markdown,
    render_matrix,
    write_matrix,
)
from reports.records import (
    SCHEMA_VERSION,
    VERDICTS,
    CoverageCell,
    DivergenceRecord,
    OutcomeRecord,
    RunSummary,
    Verdict,
    divergence_from_json,
    divergence_to_json,
    summary_from_json,
    summary_to_json,
)
from reports.redact import MASK, redact, redact_summary, redact_url_credentials, redact_value
from reports.summary import SUMMARY_FILE, read_summary, render_summary_json, write_summary

__all__ = [
    "HTML_FILE",
    "MASK",
    "MATRIX_HTML_FILE",
    "MATRIX_MARKDOWN_FILE",
    "SCHEMA_VERSION",
    "SUMMARY_FILE",
    "VERDICTS",
    "CoverageCell",
    "DivergenceRecord",
    "Matrix",
    "OutcomeRecord",
    "RunSummary",
    "Verdict",
    "atomic_write_bytes",
    "atomic_write_text",
    "build_matrix",
    "cell_status",
    "divergence_from_json",
    "divergence_to_json",
    "matrix_markdown",
    "read_summary",
    "redact",
    "redact_summary",
    "redact_url_credentials",
    "redact_value",
    "render_html",
    "render_matrix",
    "render_summary_json",
    "summary_from_json",
    "summary_to_json",
    "write_html",
    "write_matrix",
    "write_summary",
]
