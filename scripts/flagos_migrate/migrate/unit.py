"""A module the migration writes into the plugin: where it comes from, its text, and the findings
before and after the rewrites (shared by the engine and the vendoring it runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flagos_migrate.catalog.findings import Finding


@dataclass
class Unit:
    """One module the migration writes into the plugin."""

    module: str  # e.g. vllm_fl.models.qwen3_5
    origin: str | None  # upstream module it comes from
    role: str  # model | closure | config | compat
    upstream_text: str
    text: str = ""
    rules: set[str] = field(default_factory=set)
    before: list[Finding] = field(default_factory=list)
    after: list[Finding] = field(default_factory=list)
    package: bool = False  # written as <module>/__init__.py (a per-model package's entry points)

    @property
    def relpath(self) -> str:
        return self.module.replace(".", "/") + ("/__init__.py" if self.package else ".py")

    def fixed(self) -> list[Finding]:
        left = {(f.rule, f.message) for f in self.after}
        return [f for f in self.before if (f.rule, f.message) not in left]
