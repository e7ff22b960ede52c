"""The one rule catalog, read from ``catalog.yaml`` next to this file.

Every check of ``validate_migration.py``, every line of the plan that ``migrate_model.py plan``
prints and every rewrite that ``migrate_model.py apply`` performs carries one of these ids, and
``references/compatibility-patches.md`` is rendered from it. A rule's tables (renames, safe drops,
...) sit with the rule in the YAML; ``tables.py`` gives them the shapes the checks and rewrites use.
Ids P1-P12 keep the numbers of the original design card's patch catalog; P13 and later are new.

``fix`` says what the migration does about a finding of that rule:
  auto    - rewritten by ``migrate_model.py apply`` (when the finding's data allows it)
  partial - rewritten in the common, safe cases; the rest is left as a finding
  manual  - always left for the agent/human, with a hint
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

CATALOG_FILE = Path(__file__).resolve().parent / "catalog.yaml"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Rule:
    id: str
    key: str
    title: str
    fix: str  # auto | partial | manual
    severity: str  # error | warning
    why: str  # what breaks on the pinned version
    how: str  # what the tool does / what to do by hand
    example_before: str = ""  # golden text: the engine turns it into example_after exactly
    example_after: str = ""
    blocks_import: bool = False  # its error findings that run at import time make the import fail
    import_statement: bool = False  # its findings are about an import statement
    computes_otherwise: str = ""  # a finding left means the pinned model computes otherwise: how, in a phrase
    guidance: str = ""  # the row of procedure step 5 ("what to do")
    guidance_with: tuple[str, ...] = ()  # rules that share that row
    tables: dict = field(default_factory=dict, compare=False, hash=False)
    example_upstream: dict = field(default_factory=dict, compare=False, hash=False)  # relpath -> text


def load(path: Path = CATALOG_FILE) -> tuple[Rule, ...]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_Loader)
    rules = []
    for r in data["rules"]:
        rules.append(Rule(
            r["id"], r["key"], r["title"], r["fix"], r["severity"], r["why"], r["how"],
            r.get("example_before", ""), r.get("example_after", ""),
            blocks_import=bool(r.get("blocks_import")), import_statement=bool(r.get("import_statement")),
            computes_otherwise=r.get("computes_otherwise", ""),
            guidance=r.get("guidance", ""), guidance_with=tuple(r.get("guidance_with", ())),
            tables=r.get("tables") or {}, example_upstream=r.get("example_upstream") or {}))
    return tuple(rules)


CATALOG: tuple[Rule, ...] = load()
BY_ID: dict[str, Rule] = {r.id: r for r in CATALOG}
BY_KEY: dict[str, Rule] = {r.key: r for r in CATALOG}


def rule(rule_id: str) -> Rule:
    return BY_ID[rule_id]
