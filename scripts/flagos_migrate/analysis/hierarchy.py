"""Class hierarchies of one file's classes: C3 over local classes, pinned classes (from the index)
and external bases, and what each class of a hierarchy defines.

An entry of a method resolution order is ``(kind, obj)``: ``("local", ClassDef)``,
``("pinned", (Symbol, class record))``, ``("external", "torch.nn.Module")`` or
``("unknown", written)``. "Unknown" anywhere means the checks that need the hierarchy stay silent.
"""

from __future__ import annotations

import ast

from flagos_migrate.astutil import dotted
from flagos_migrate.pinned.api_index import Symbol, _normalise_external, external_members


class Hierarchy:
    def __init__(self, m):
        self.m = m  # ModuleFacts
        self.apis = m.apis
        self._mro_cache: dict[str, list] = {}
        self._members_cache: dict[str, tuple] = {}
        self._local_method_names: dict[str, set[str]] = {}

    def _entry_bases(self, entry: tuple) -> list[tuple]:
        kind, obj = entry
        out: list[tuple] = []
        if kind == "local":
            for base in obj.bases:
                local = self._local_class_before(base.id, obj) if isinstance(base, ast.Name) else None
                if local is not None:
                    out.append(("local", local))
                    continue
                sym = self.m.resolve_expr(base.value if isinstance(base, ast.Subscript) else base)
                out.append(self._symbol_entry(sym, dotted(base) or "?"))
        elif kind == "pinned":
            for sym in self.apis.base_symbols(obj[0]):
                out.append(self._symbol_entry(sym, "?"))
        return out

    def _local_class_before(self, name: str, cls: ast.ClassDef) -> ast.ClassDef | None:
        """The local class a base name means at the ``class`` statement (``class X(X)`` means the import)."""
        found = None
        for stmt in self.m.tree.body:
            if stmt is cls:
                break
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                found = stmt
        return found

    def _symbol_entry(self, sym: Symbol | None, written: str) -> tuple:
        if sym is None:
            return ("unknown", written)
        if sym.kind == "class":
            rec = self.apis.class_record(sym)
            return ("pinned", (sym, rec)) if rec is not None else ("unknown", sym.qualname)
        if sym.kind == "external":
            return ("external", sym.qualname)
        return ("unknown", sym.qualname)

    @staticmethod
    def _entry_key(entry: tuple) -> str:
        kind, obj = entry
        if kind == "local":
            return "local:" + obj.name
        if kind == "pinned":
            return obj[0].qualname
        return f"{kind}:{obj}"

    def linearize(self, entry: tuple, _depth: int = 0) -> list[tuple]:
        """Method resolution order (C3; depth-first order when C3 has no solution)."""
        key = self._entry_key(entry)
        if key in self._mro_cache:
            return self._mro_cache[key]
        if _depth > 40:
            return [entry, ("unknown", "deep")]
        bases = self._entry_bases(entry)
        seqs = [self.linearize(b, _depth + 1) for b in bases] + [list(bases)]
        seqs = [list(s) for s in seqs if s]
        result = [entry]
        while seqs:
            head = None
            for seq in seqs:
                cand = self._entry_key(seq[0])
                if not any(cand in [self._entry_key(e) for e in s[1:]] for s in seqs):
                    head = seq[0]
                    break
            if head is None:  # inconsistent: fall back to depth-first, de-duplicated
                seen = {self._entry_key(e) for e in result}
                for seq in seqs:
                    for e in seq:
                        if self._entry_key(e) not in seen:
                            seen.add(self._entry_key(e))
                            result.append(e)
                break
            hk = self._entry_key(head)
            result.append(head)
            seqs = [[e for e in s if self._entry_key(e) != hk] for s in seqs]
            seqs = [s for s in seqs if s]
        self._mro_cache[key] = result
        return result

    def local_members(self, node: ast.ClassDef) -> tuple[set[str], bool]:
        """Members a local class defines (methods, class attributes, self.X assigned anywhere in it),
        and whether it sets attributes dynamically (then nothing can be judged)."""
        if node.name in self._members_cache:
            return self._members_cache[node.name]
        members: set[str] = set()
        dynamic = False
        for stmt in node.body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                members.add(stmt.name)
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for t in targets:
                    for sub in self.m.subtree(t):
                        if isinstance(sub, ast.Name):
                            members.add(sub.id)
        for sub in self.m.below(node, ast.Attribute, ast.Call):
            if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls"):
                if isinstance(sub.ctx, ast.Store):
                    members.add(sub.attr)
                elif sub.attr == "__dict__":
                    dynamic = True
            elif isinstance(sub, ast.Call):
                fname = dotted(sub.func) or ""
                last = fname.rsplit(".", 1)[-1]
                if last in ("setattr", "add_module", "register_module", "register_buffer", "register_parameter"):
                    args = sub.args[1:] if last == "setattr" else sub.args
                    if last == "setattr" and not (sub.args and isinstance(sub.args[0], ast.Name)
                                                  and sub.args[0].id == "self"):
                        continue
                    if args and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
                        members.add(args[0].value)
                    else:
                        dynamic = True
        if "__getattr__" in members or "__getattribute__" in members:
            dynamic = True
        self._members_cache[node.name] = (members, dynamic)
        return members, dynamic

    def entry_defines(self, entry: tuple, member: str) -> bool | None:
        kind, obj = entry
        if kind == "local":
            members, dynamic = self.local_members(obj)
            return True if member in members else (None if dynamic else False)
        if kind == "pinned":
            rec = obj[1]
            if member in rec["methods"] or member in rec["attrs"] or any(f[0] == member for f in rec.get("fields", ())):
                return True
            if "__getattr__" in rec["methods"] or rec.get("dyn"):
                return None
            return False
        if kind == "external":
            known = external_members().get(_normalise_external(obj))
            if known is None:
                return None
            return member in known
        return None

    def hierarchy_defines(self, entries: list[tuple], member: str) -> bool | None:
        unknown = False
        for e in entries:
            r = self.entry_defines(e, member)
            if r:
                return True
            if r is None:
                unknown = True
        return None if unknown else False

    def subclass_defines(self, cls: ast.ClassDef, member: str) -> bool:
        """A local subclass defines the member (template-method pattern): not an issue."""
        key = "local:" + cls.name
        for other in self.m.local_classes.values():
            if other is cls:
                continue
            lin = self.linearize(("local", other))
            if any(self._entry_key(e) == key for e in lin[1:]) and member in self.local_members(other)[0]:
                return True
        return False

    def local_method_names(self, cls: ast.ClassDef) -> set[str]:
        """Members defined by the local classes of ``cls``'s hierarchy."""
        found = self._local_method_names.get(cls.name)
        if found is None:
            lin = self.linearize(("local", cls))
            found = self._local_method_names[cls.name] = set().union(
                *(self.local_members(e[1])[0] for e in lin if e[0] == "local"))
        return found
