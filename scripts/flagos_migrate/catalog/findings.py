"""Findings: what the analysis reports, in one shape for the validator, the plan and the rewriter."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from flagos_migrate.catalog.rules import BY_ID


@dataclass
class Finding:
    rule: str  # catalog id, e.g. "P13"
    file: str
    line: int
    col: int
    message: str
    severity: str = ""  # "error" | "warning"; defaults to the rule's severity
    fix: str | None = None  # human-readable fix, e.g. "import it from vllm.attention.layer"
    data: dict = field(default_factory=dict)  # structured facts the rewriter acts on

    def __post_init__(self) -> None:
        if self.rule not in BY_ID:
            raise ValueError(f"unknown rule id {self.rule!r}")
        if not self.severity:
            self.severity = BY_ID[self.rule].severity

    @property
    def is_issue(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["title"] = BY_ID[self.rule].title
        return d


def split(findings: list[Finding], strict: bool = False) -> tuple[list[Finding], list[Finding]]:
    """(issues, warnings); ``strict`` promotes warnings to issues."""
    issues = [f for f in findings if f.is_issue or strict]
    warnings = [f for f in findings if not (f.is_issue or strict)]
    return issues, warnings


def left_for_you(findings) -> list[Finding]:
    """What is "left for you", one definition for plan, apply (and their exit code), the migration
    record, the validator and the benchmarks: every finding the tool did not fix, errors and
    warnings alike. A warning is a difference the tool could not settle (P24's dead hook was a load
    failure at runtime), so "0 left for you" means no finding at all."""
    return list(findings)


def left_counts(findings) -> dict:
    """How many findings are left for you, and how many of them are errors and warnings."""
    left = left_for_you(findings)
    errors = sum(1 for f in left if f.is_issue)
    return {"left": len(left), "errors": errors, "warnings": len(left) - errors}


def sort_key(f: Finding) -> tuple:
    return (f.file, f.line, f.col, f.rule, f.message)


def format_text(f: Finding) -> str:
    text = f"{f.file}:{f.line}:{f.col}: {f.severity} {f.rule} {f.message}"
    if f.fix:
        text += f"\n    fix: {f.fix}"
    return text


def _gh_escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def format_github(f: Finding) -> str:
    """A GitHub Actions workflow command (annotation)."""
    level = "error" if f.is_issue else "warning"
    msg = f.message + (f" (fix: {f.fix})" if f.fix else "")
    return (
        f"::{level} file={_gh_escape(f.file, True)},line={f.line},col={f.col},"
        f"title={_gh_escape(f.rule + ' ' + BY_ID[f.rule].title, True)}::{_gh_escape(msg)}"
    )


def to_json(issues: list[Finding], warnings: list[Finding], **extra) -> str:
    payload = {"issues": [f.to_dict() for f in issues], "warnings": [f.to_dict() for f in warnings]}
    payload.update(extra)
    return json.dumps(payload, indent=2, default=str)
