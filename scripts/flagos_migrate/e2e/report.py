"""Reports of the end-to-end comparison: JSON (machine), Markdown (PR comment), HTML (side by side).

The HTML page is self-contained (inline CSS, no scripts): GT and local token ids side by side,
the first divergence highlighted, tokens after it greyed out, and each token's top-k
candidates with logprobs in its ``title`` (shown on hover). Every text is escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from flagos_migrate.e2e.compare import EARLY_POSITIONS
from flagos_migrate.fsutil import atomic_write_json, atomic_write_text

REPORT_NAMES = {"json": "report.json", "markdown": "report.md", "html": "report.html"}


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


def render_markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    lines = [
        "## E2E correctness: plugin vs upstream (GT)",
        "",
        f"**{s['passed']}/{s['total']} prompts passed** "
        f"(match {s['counts'].get('match', 0)}, close {s['counts'].get('close', 0)}, "
        f"mismatch {s['counts'].get('mismatch', 0)}, too short {s['counts'].get('too_short', 0)}, "
        f"empty {s['counts'].get('empty', 0)}, errors {s['counts'].get('error', 0) + s['counts'].get('missing', 0)})",
        "",
    ]
    for side, info in report["servers"].items():
        if info:
            lines.append(f"- {side}: `{info.get('url')}` model `{info.get('model')}`")
    st = report["settings"]
    lines += [f"- greedy, max_tokens {st['max_tokens']}, token_match_count {st['token_match_count']}, "
              f"top_k {st['top_k']}, seed {st['seed']}, api {st['api']}", ""]
    for note in report["notes"]:
        lines.append(f"> {note}")
    if report["notes"]:
        lines.append("")
    lines += ["| prompt | category | verdict | position | GT token (logprob) | local token (logprob) |",
              "|---|---|---|---|---|---|"]
    for row in report["prompts"]:
        gt, lo = row.get("gt") or {}, row.get("local") or {}
        names = report.get("token_text") or {}
        gt_cell = f"{_md_escape(_token_label(gt['token_id'], names))} ({_fmt_lp(gt.get('logprob'))})" if gt else "-"
        lo_cell = f"{_md_escape(_token_label(lo['token_id'], names))} ({_fmt_lp(lo.get('logprob'))})" if lo else "-"
        lines.append(f"| `{row['id']}` | {row['category']} | **{row['verdict']}** | {_position_text(row)} "
                     f"| {gt_cell} | {lo_cell} |")
    details = [r for r in report["prompts"] if r["verdict"] != "match"]
    if details:
        lines += ["", "### Details", ""]
        for row in details:
            lines.append(f"- `{row['id']}` **{row['verdict']}**: {_md_escape(row.get('detail', ''))}")
            if row.get("diagnosis"):
                lines.append(f"  - {_md_escape(row['diagnosis'])}")
    if s["early_divergence"]:
        lines += ["", f"**Early divergence (first {EARLY_POSITIONS} tokens) in: "
                      f"{', '.join(s['early_divergence'])} - likely a code bug.**"]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.sum{border-collapse:collapse}table.sum td,table.sum th{border:1px solid #ccc;padding:3px 8px}
.v-match,.v-close{color:#176b2c}.v-mismatch,.v-too_short,.v-empty,.v-error,.v-missing{color:#b00020}
section{border-top:1px solid #ddd;margin-top:1.2em;padding-top:.6em}
.row{display:flex;flex-wrap:wrap;gap:2px;margin:.2em 0}.lbl{width:4.5em;font-weight:bold}
.t{font-family:monospace;font-size:12px;padding:1px 3px;border-radius:3px;background:#eef3ff}
.t.div{background:#ffd34d;outline:2px solid #b00020}.t.after{background:#f2f2f2;color:#999}
pre{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:.5em;max-height:14em;overflow:auto}
"""


def _token_title(output: dict[str, Any], i: int, names: dict[str, str]) -> str:
    lps = output.get("logprobs") or []
    tops = output.get("top") or []
    lines = [f"position {i}: token {_token_label(output['token_ids'][i], names)}"
             + (f" logprob {lps[i]:.4f}" if i < len(lps) and lps[i] is not None else "")]
    if i < len(tops):
        lines.append("top-k: " + ", ".join(f"{_token_label(k, names)} ({lp:.4f})" for k, lp in tops[i]))
    return "\n".join(lines)


def _token_row(label: str, output: dict[str, Any] | None, divergence: int | None, names: dict[str, str]) -> str:
    if not output:
        return f'<div class="row"><span class="lbl">{html.escape(label)}</span><em>no output</em></div>'
    spans = []
    for i, tid in enumerate(output.get("token_ids") or []):
        cls = "t div" if i == divergence else ("t after" if divergence is not None and i > divergence else "t")
        text = names.get(str(tid))
        shown = _shown(text) if text is not None else str(tid)
        spans.append(f'<span class="{cls}" title="{html.escape(_token_title(output, i, names), quote=True)}">'
                     f"{html.escape(shown)}</span>")
    return f'<div class="row"><span class="lbl">{html.escape(label)}</span>{"".join(spans)}</div>'


def render_html(report: dict[str, Any]) -> str:
    s, e = report["summary"], html.escape
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
             "<title>E2E correctness report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>E2E correctness: plugin vs upstream (GT)</h1>",
             f"<p><strong>{s['passed']}/{s['total']}</strong> prompts passed.</p><ul>"]
    for side, info in report["servers"].items():
        if info:
            parts.append(f"<li>{e(side)}: <code>{e(str(info.get('url')))}</code> model "
                         f"<code>{e(str(info.get('model')))}</code></li>")
    parts.append("</ul>")
    for note in report["notes"]:
        parts.append(f"<p><em>{e(note)}</em></p>")
    parts.append('<table class="sum"><tr><th>prompt</th><th>category</th><th>verdict</th>'
                 "<th>position</th><th>detail</th></tr>")
    for row in report["prompts"]:
        parts.append(f'<tr><td><a href="#p-{e(row["id"], quote=True)}">{e(row["id"])}</a></td>'
                     f"<td>{e(row['category'])}</td><td class=\"v-{e(row['verdict'])}\">{e(row['verdict'])}</td>"
                     f"<td>{e(_position_text(row))}</td><td>{e(row.get('detail', ''))}</td></tr>")
    parts.append("</table>")
    for row in report["prompts"]:
        outs = row.get("outputs") or {}
        parts.append(f'<section id="p-{e(row["id"], quote=True)}"><h2>{e(row["id"])} '
                     f'<small>({e(row["category"])}, {e(row["modality"])})</small> '
                     f'<span class="v-{e(row["verdict"])}">{e(row["verdict"])}</span></h2>')
        parts.append(f"<details><summary>prompt</summary><pre>{e(row.get('prompt_text', ''))}</pre>")
        for url in row.get("images") or []:
            if _is_image_data_url(url):
                parts.append(f'<img alt="prompt image" width="64" height="64" src="{e(url, quote=True)}">')
        parts.append("</details>")
        parts.append(f"<p>{e(row.get('detail', ''))}</p>")
        if row.get("diagnosis"):
            parts.append(f"<p><em>{e(row['diagnosis'])}</em></p>")
        names = report.get("token_text") or {}
        parts.append(_token_row("GT", outs.get("gt"), row.get("position"), names))
        parts.append(_token_row("local", outs.get("local"), row.get("position"), names))
        for side in ("gt", "local"):
            out = outs.get(side)
            if out:
                text = (out.get("reasoning") or "") + ("\n---\n" if out.get("reasoning") else "") + out.get("text", "")
                parts.append(f"<details><summary>{e(side)} text</summary><pre>{e(text)}</pre></details>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


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
