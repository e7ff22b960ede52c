"""Static checks of one file against the pinned index (the validator's, the plan's and apply's).

``engine`` parses once and runs the checks; ``facts`` holds what they share; the checks live by
concern: ``imports`` (triage of every import, what blocks import), ``calls`` (P6/P7),
``members`` (P4/P9), ``inherited`` (P23-P26: what the pinned hierarchy does differently),
``framework`` (P27-P29: what the pinned framework around the model does differently), ``structure`` (P8, P11, P12, P15, P19), ``bridges`` (P15 across files);
``hierarchy`` and ``signatures`` answer class and call questions for them.
"""

from flagos_migrate.analysis.engine import (
    AnalysisContext,
    analyze_source,
    analyze_tree,
    import_blockers,
    parse_text,
)
from flagos_migrate.astutil import ImportBinding, Usage, import_bindings, name_usage

__all__ = ["AnalysisContext", "ImportBinding", "Usage", "analyze_source", "analyze_tree", "import_bindings",
           "import_blockers", "name_usage", "parse_text"]
