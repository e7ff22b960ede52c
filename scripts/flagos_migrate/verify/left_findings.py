"""Which finding left in the migrated files a runtime failure most plausibly is.

``runtime.likely_rule`` guesses a rule from the error message alone; a migration that left findings
knows more. apply records each finding left for you with its span (:func:`record_entries`: the
innermost def/class around its line in the written file); ``verify --run`` ties a failure to one
(:func:`explain`) when

  - the error names the missing symbol a finding names (interns1_pro's "no attribute
    'deepstack_input_embeds'" and P12's "never sets deepstack_input_embeds"), else
  - a traceback frame, innermost first, lies in a finding's span (in a file still as apply wrote it), else
  - the registered class's ``__new__`` built another class (the pinned model's classes lack it), and a finding
    lies in that ``__new__`` (jina's JinaEmbeddingsV5Model picks its encoder on P45's ``is_decoder`` read: the load
    fails inside the class it chose, whose frames never pass the read), else
  - the match level failed and a finding of a rule that says the pinned model computes otherwise is left
    (``computes_otherwise`` in the catalog: ``catalog.tables.MATCH_RULES``).

When findings are left and none fits, the report lists the rules left next to the message's guess, so a
reader sees what apply could not settle. Pure functions.
"""

from __future__ import annotations

import ast
import re

from flagos_migrate.catalog.tables import MATCH_RULES
from flagos_migrate.verify import import_probe

MAX_MESSAGE = 400
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+)')
_IDENT = re.compile(r"^[A-Za-z_]\w*$")


def span_of(text: str, line: int) -> tuple[int, int]:
    """The lines of the innermost statement of ``text`` around ``line``: a whole def/class (its decorators too)
    for a finding on its header (P12 on ``def __init__``, P38 on the class), the one statement for a finding
    inside a body; a finding on a comment apply wrote (P26's) is the statement the comment precedes;
    ``(line, line)`` when the text does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return line, line
    lines = text.splitlines()
    while line < len(lines) and lines[line - 1].strip().startswith("#"):
        line += 1
    best = (line, line)
    width = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt):
            continue
        start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        end = node.end_lineno or node.lineno
        if start <= line <= end and (width is None or end - start < width):
            best, width = (start, end), end - start
    return best


def record_entries(findings, texts: dict[str, str]) -> list[dict]:
    """The migration record's entries for ``findings`` (left for you), each with its span in ``texts``
    (relpath -> the text apply writes)."""
    out = []
    for f in findings:
        text = texts.get(f.file)
        start, end = span_of(text, f.line) if text is not None else (f.line, f.line)
        entry = {"rule": f.rule, "file": f.file, "line": f.line, "span": [start, end], "severity": f.severity,
                 "message": f.message[:MAX_MESSAGE]}
        if f.data.get("runtime_unseen"):  # what no verify --run can exercise (P25's architecture conversion)
            entry["runtime_unseen"] = True
        out.append(entry)
    return out


def frames_of(error: dict) -> list[tuple[str, int]]:
    """(file, line) of the error's traceback, innermost first: its structured frames, else its text tail."""
    frames = [(str(f.get("file", "")), int(f.get("line") or 0)) for f in error.get("frames") or []
              if isinstance(f, dict)]
    if not frames:
        frames = [(m.group("file"), int(m.group("line"))) for m in _FRAME.finditer(error.get("traceback_tail") or "")]
    return frames[::-1]


def missing_name(error: dict) -> str:
    """The symbol the error says is missing (attribute, name, keyword), else ""."""
    message = str(error.get("message") or "")
    missing, _ = import_probe.parse_missing(str(error.get("type") or ""), message)
    if not missing:
        m = re.search(r"name '(?P<name>\w+)' is not defined", message)
        missing = m.group("name") if m else ""
    return missing.rsplit(".", 1)[-1] if missing else ""


def _relpath(file: str, left: list[dict]) -> str | None:
    path = file.replace("\\", "/")
    return next((e["file"] for e in left if path == e["file"] or path.endswith("/" + e["file"])), None)


def _where(entry: dict) -> str:
    return f"{entry['rule']} at {entry['file']}:{entry['line']}"


def chosen_by_new(spec: dict, built: list[str] | None, plugin_root, left: list[dict]) -> dict | None:
    """When the pinned model built for ``spec`` (its ``module`` / ``class``) is not of the registered class
    (``built``: the names of its classes, the worker's ``model_classes``), that class's ``__new__`` chose it:
    ``{"file", "span", "registered", "built"}`` with the ``__new__``'s lines in the written file; else None."""
    if not built or not left or spec.get("class") in built:
        return None
    rel = str(spec.get("module") or "").replace(".", "/") + ".py"
    try:
        tree = ast.parse((plugin_root / rel).read_text())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == spec.get("class"):
            for fn in node.body:
                if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.name == "__new__":
                    return {"file": rel, "span": [fn.lineno, fn.end_lineno or fn.lineno],
                            "registered": node.name, "built": built[0]}
    return None


def explain(level: str, error: dict, left: list[dict], unchanged: set[str] | None = None,
            chosen: dict | None = None, arch: str = "", guess: str | None = None) -> dict | None:
    """The finding left behind a failure of ``level``: ``{"rule", "finding", "why"}``; None when none fits
    or nothing is left. ``unchanged``: the files still as apply wrote them (spans are read only there; all
    when None); ``chosen``: :func:`chosen_by_new`'s answer; ``arch`` / ``guess``: the failing architecture and
    the rule its error message points to (a finding of that rule on the architecture's registration is it)."""
    if not left:
        return None
    name = missing_name(error)
    if name and _IDENT.match(name):
        word = re.compile(r"(?<!\w)" + re.escape(name) + r"(?!\w)")
        for entry in left:
            if word.search(entry.get("message") or ""):
                return {"rule": entry["rule"], "finding": _where(entry),
                        "why": f"the error names {name}, which the finding names"}
    for file, line in frames_of(error):
        rel = _relpath(file, left)
        if rel is None or (unchanged is not None and rel not in unchanged):
            continue
        hits = [e for e in left if e["file"] == rel and e["span"][0] <= line <= e["span"][1]]
        # the innermost span first: the finding closest to the failing line; on the same span an error before a
        # warning (P26's comment shares the statement it precedes: gemma4_mm's tower built by P41's AutoModel)
        if hits:
            entry = min(hits, key=lambda e, line=line: (e["span"][1] - e["span"][0], e.get("severity") == "warning",
                                                        abs(e["line"] - line), e["line"]))
            return {"rule": entry["rule"], "finding": _where(entry),
                    "why": f"the traceback passes {rel}:{line}, inside the finding's span "
                           f"(lines {entry['span'][0]}-{entry['span'][1]})"}
    if chosen and (unchanged is None or chosen["file"] in unchanged):
        start, end = chosen["span"]
        hits = [e for e in left if e["file"] == chosen["file"] and start <= e["line"] <= end]
        if hits:
            return {"rule": hits[0]["rule"], "finding": _where(hits[0]),
                    "why": f"the pinned vLLM built {chosen['built']}, not the registered {chosen['registered']}: "
                           f"its __new__ (lines {start}-{end}) chose it, and the finding lies there"}
    # framework code outside the model file raised (deepseek_eagle3: the pinned SpeculativeConfig refuses its
    # target, no frame in the migrated files): the finding on this architecture of the rule the message names
    on_arch = [e for e in left if guess and e["rule"] == guess and _on_arch(e, arch)]
    if on_arch:
        return {"rule": guess, "finding": _where(on_arch[0]),
                "why": f"the message points to {guess}, and the {guess} finding left is on {arch}"}
    # not one the harness never exercises: it builds the registered class by name, so a checkpoint's architecture
    # conversion (P25) cannot be why its logits differ
    computing = [e for e in left if e["rule"] in MATCH_RULES and not e.get("runtime_unseen")]
    # the one on this architecture first (llama: LlamaBidirectionalModel's P25, not its classifier's beside it;
    # cohere2_vision: its P43 on the registration, not a P24 processor hook earlier in the file, which a text
    # prefill never reaches)
    computing.sort(key=lambda e: not _on_arch(e, arch))
    if level == "match" and computing:
        entry = computing[0]
        more = [e for e in computing[1:] if e["rule"] == entry["rule"]]
        return {"rule": entry["rule"],
                "finding": _where(entry) + (f" (and {len(more)} more of {entry['rule']})" if more else ""),
                "why": f"nothing raised, and the finding left is {MATCH_RULES[entry['rule']]}"}
    return None


def _on_arch(entry: dict, arch: str) -> bool:
    """A finding on ``arch``'s registration: its message starts "architecture <arch>" (P25/P38's "architecture
    X: ...", P43's "architecture X runs through ...")."""
    return bool(arch) and re.match(r"architecture " + re.escape(arch) + r"(?!\w)", entry.get("message") or "") is not None


def rules_left(left: list[dict]) -> list[str]:
    """The rules of the findings left, each once, in catalog order."""
    return sorted({e["rule"] for e in left}, key=lambda r: (len(r), r))
