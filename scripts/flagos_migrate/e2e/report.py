"""Reports of the end-to-end comparison: JSON (machine), Markdown (PR comment), HTML (side by side).

The HTML page is self-contained (inline CSS, no scripts): GT and local token ids side by side,
the first divergence highlighted, tokens after it greyed out, and each token's top-k
candidates with logprobs in its ``title`` (shown on hover). Every text is escaped (jinja2
autoescape). The layouts are the templates ``templates/e2e-report.md.j2`` and ``.html.j2``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from flagos_migrate.e2e.compare import EARLY_POSITIONS
from flagos_migrate.fsutil import atomic_write_json, atomic_write_text

REPORT_NAMES = {"json": "report.json", "markdown": "report.md", "html": "report.html"}
# the layouts, as templates a person can edit (templates/ at the top of the skill)
TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


@lru_cache(maxsize=None)
def _template(name: str) -> jinja2.Template:
    """Compiled once per process (several reports render in one run)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             autoescape=jinja2.select_autoescape(["html", "html.j2"]), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(md=_md_escape, position=_position_text, token_spans=_token_spans)
    env.filters["token_cell"] = _token_cell
    env.tests["is_image"] = _is_image_data_url
    return env.get_template(name)


def build_report(settings: dict[str, Any], prompts: list[dict[str, Any]], verdicts: dict[str, dict[str, Any]],
                 summary: dict[str, Any], sides: dict[str, Any], outputs: dict[str, dict[str, Any]],
                 notes: list[str], token_text: dict[str, str] | None = None) -> dict[str, Any]:
    """The whole report as data; the three formats are rendered from it.

    ``token_text`` maps token ids (as strings) to their text, for display only.
    """
    rows = []
    for p in prompts:
        pid = p["id"]
        rows.append({**p, **verdicts[pid], "outputs": outputs.get(pid, {})})
    return {"summary": summary, "settings": settings, "servers": sides, "notes": notes, "prompts": rows,
            "token_text": dict(token_text or {})}


def _shown(text: str) -> str:
    """Whitespace made visible, so that ' a' and 'a' can be told apart."""
    return text.replace(" ", "\u2423").replace("\n", "\u21b5").replace("\t", "\u21e5") or "\u2205"


def _token_label(token: Any, names: dict[str, str]) -> str:
    text = names.get(str(token))
    return f'{token} "{_shown(text)}"' if text is not None else str(token)


def _fmt_lp(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _position_text(row: dict[str, Any]) -> str:
    return "-" if row.get("position") is None else str(row["position"])


def _token_cell(side: dict[str, Any] | None, names: dict[str, str]) -> str:
    if not side:
        return "-"
    return f"{_md_escape(_token_label(side['token_id'], names))} ({_fmt_lp(side.get('logprob'))})"


def render_markdown(report: dict[str, Any]) -> str:
    return _template("e2e-report.md.j2").render(report=report, names=report.get("token_text") or {},
                                                 early_positions=EARLY_POSITIONS)


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _token_title(output: dict[str, Any], i: int, names: dict[str, str]) -> str:
    lps = output.get("logprobs") or []
    tops = output.get("top") or []
    lines = [f"position {i}: token {_token_label(output['token_ids'][i], names)}"
             + (f" logprob {lps[i]:.4f}" if i < len(lps) and lps[i] is not None else "")]
    if i < len(tops):
        lines.append("top-k: " + ", ".join(f"{_token_label(k, names)} ({lp:.4f})" for k, lp in tops[i]))
    return "\n".join(lines)


def _token_spans(output: dict[str, Any], divergence: int | None, names: dict[str, str]) -> list[dict[str, str]]:
    """One span per token: its CSS class, the text shown and the hover title (escaped by the template)."""
    spans = []
    for i, tid in enumerate(output.get("token_ids") or []):
        cls = "t div" if i == divergence else ("t after" if divergence is not None and i > divergence else "t")
        text = names.get(str(tid))
        spans.append({"cls": cls, "shown": _shown(text) if text is not None else str(tid),
                      "title": _token_title(output, i, names)})
    return spans


def render_html(report: dict[str, Any]) -> str:
    """Autoescaped: every value from the servers or the prompts is text, never markup."""
    return _template("e2e-report.html.j2").render(report=report, names=report.get("token_text") or {})


def _is_image_data_url(url: str) -> bool:
    """Only embedded PNG/JPEG data URLs are shown; remote URLs would make the page fetch things."""
    return isinstance(url, str) and url.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))


def write_reports(report: dict[str, Any], results_dir: str | Path) -> dict[str, str]:
    out_dir = Path(results_dir)
    paths = {kind: out_dir / name for kind, name in REPORT_NAMES.items()}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["markdown"], render_markdown(report))
    atomic_write_text(paths["html"], render_html(report))
    return {kind: str(p) for kind, p in paths.items()}


def console_table(report: dict[str, Any]) -> str:
    rows = [("prompt", "category", "verdict", "pos", "detail")]
    for r in report["prompts"]:
        rows.append((r["id"], r["category"], r["verdict"], _position_text(r), r.get("detail", "")))
    widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
    lines = ["  ".join(str(v).ljust(widths[i]) for i, v in enumerate(row[:4])) + "  " + str(row[4]) for row in rows]
    s = report["summary"]
    lines.append(f"{s['passed']}/{s['total']} passed")
    return "\n".join(lines)
