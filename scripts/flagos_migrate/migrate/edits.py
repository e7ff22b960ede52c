"""What one pass of the migration rewrites: plain data that the analysis' checks propose from their
findings (``propose_edits`` next to each check) and that ``rewrites.apply_edits`` carries out.
Kept free of libcst so the validator, which only proposes nothing, imports none of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImportAction:
    """What happens to one imported name (``name`` None: the whole statement)."""

    rule: str
    kind: str  # repoint | remove | type_checking | rename | equivalent | defer
    new_module: str | None = None
    new_name: str | None = None
    targets: tuple[tuple[str, str], ...] = ()  # equivalent: the pinned (module, class) pairs it stands for
    lines: tuple[int, ...] = ()  # defer: the ``def`` lines of the functions the import moves into


@dataclass
class Edits:
    """Everything one pass rewrites; keys are the 1-based lines the findings point at."""

    imports: dict[tuple[int, str | None], ImportAction] = field(default_factory=dict)
    unwrap: dict[int, str] = field(default_factory=dict)  # line of ``with`` -> rule
    unwrap_calls: dict[str, str] = field(default_factory=dict)  # local name of a P21 context manager -> rule
    drop_kwargs: dict[tuple[int, str], str] = field(default_factory=dict)  # (call line, kwarg) -> rule
    rename_kwargs: dict[tuple[int, str, str], str] = field(default_factory=dict)  # (line, old, new) -> rule
    # (call line, kwarg) -> (rule, the value's source): appended as the call's last argument (P7)
    add_kwargs: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)
    # (call line, kwarg) -> the callee's last name: only that call on the line gets it, not another call starting
    # there (``super()`` of ``super()._embed_text_input_ids(...)``)
    add_kwargs_to: dict[tuple[int, str], str] = field(default_factory=dict)
    # (call line, argument position or keyword) -> (rule, function, extra keywords' source): the argument
    # ``a`` becomes ``function(a, extra)`` (P7 config_defaults)
    wrap_args: dict[tuple[int, int | str], tuple[str, str, str]] = field(default_factory=dict)
    # (call line, method) -> (rule, the pinned method to call instead): ``X.method(`` becomes ``X.new(`` (P7)
    rename_callees: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)
    # (call line, callee name) -> (rule, keywords): the call's leading positionals passed by those names (P7)
    keyword_positionals: dict[tuple[int, str], tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    attr_renames: dict[str, str] = field(default_factory=dict)  # attr -> rule (table in ATTR_RENAMES)
    # (class, method, keyword) -> (rule, value source): the method takes ``keyword=value`` (keyword-only) and raises
    # NotImplementedError at its start on any other value (P6 override_keywords)
    override_keywords: dict[tuple[str, str, str], tuple[str, str]] = field(default_factory=dict)
    # (class, method) -> (rule, the P7 override_forms row): upstream's form of the override takes the pinned parameters
    override_forms: dict[tuple[str, str], tuple[str, dict]] = field(default_factory=dict)
    # (line, attr) -> (rule, default source): ``x.attr`` read becomes ``getattr(x, "attr", default)`` (P9)
    attr_defaults: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)
    remove_methods: dict[tuple[str, str], str] = field(default_factory=dict)  # (class, method) -> rule
    # (class, method) -> (rule, the method's source): appended to the class body (P23)
    add_methods: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    # line of a statement -> (rule, the code that replaces it) (P28)
    replace_statements: dict[int, tuple[str, str]] = field(default_factory=dict)
    # (line, string value) -> (rule, new value): a string constant's text replaced, quotes kept (P36)
    replace_strings: dict[tuple[int, str], tuple[str, str]] = field(default_factory=dict)
    # (line, holder name, attr) -> (rule, new attr): ``holder.attr`` on that line becomes ``holder.new`` (P40)
    attr_aliases: dict[tuple[int, str, str], tuple[str, str]] = field(default_factory=dict)
    # (line of an ``isinstance(x, C)`` call, C) -> rule: the check is False on the pinned vLLM (C is a class of
    # an absent subsystem), and so is an ``and`` it begins (P3)
    never_instances: dict[tuple[int, str], str] = field(default_factory=dict)
    # (module, name) -> rule: `from module import name` added after the imports unless the name is bound
    add_imports: dict[tuple[str, str], str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.imports or self.unwrap or self.unwrap_calls or self.drop_kwargs or self.rename_kwargs
                    or self.add_kwargs or self.wrap_args or self.rename_callees or self.attr_defaults or self.attr_renames
                    or self.remove_methods or self.add_methods or self.replace_statements or self.add_imports
                    or self.replace_strings or self.attr_aliases or self.keyword_positionals
                    or self.override_keywords or self.override_forms)

    def rules(self) -> set[str]:
        out = {a.rule for a in self.imports.values()}
        for table in (self.unwrap, self.unwrap_calls, self.drop_kwargs, self.rename_kwargs, self.attr_renames,
                      self.remove_methods, self.never_instances):
            out.update(table.values())
        out.update(rule for rule, _ in self.add_methods.values())
        out.update(rule for rule, _ in self.add_kwargs.values())
        out.update(rule for rule, _, _ in self.wrap_args.values())
        out.update(rule for rule, _ in self.rename_callees.values())
        out.update(rule for rule, _ in self.keyword_positionals.values())
        out.update(rule for rule, _ in self.override_keywords.values())
        out.update(rule for rule, _ in self.override_forms.values())
        out.update(rule for rule, _ in self.attr_defaults.values())
        out.update(rule for rule, _ in self.replace_statements.values())
        out.update(rule for rule, _ in self.replace_strings.values())
        out.update(rule for rule, _ in self.attr_aliases.values())
        out.update(self.add_imports.values())
        return out
