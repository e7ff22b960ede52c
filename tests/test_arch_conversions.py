"""P25 arch_conversions: upstream's ModelConfig converts some released checkpoints' architectures before choosing
the model class (vllm/transformers_utils/model_arch_config_convertor.py); the pinned vLLM does not, so a migrated
class that is only such a target is never built for a released checkpoint without --hf-overrides. The table is
recomputed from upstream's source, its absence checked on the pinned source, and the finding's text pinned on d3."""

from __future__ import annotations

import ast

import pytest
from flagos_migrate.analysis.inherited import arch_conversion, framework_findings
from flagos_migrate.catalog.tables import ARCH_CONVERSIONS, ARCH_CONVERSIONS_ABSENT, ARCH_CONVERTOR_MODULE

from tests.analysis_helpers import PINNED_VENV, UPSTREAM_SRC, empty_plugin

PINNED_SRC = PINNED_VENV / "lib" / "python3.11" / "site-packages" / "vllm"


def _getattr_name(node: ast.AST) -> str | None:
    """``"x"`` of ``getattr(hf_config, "x", ...)``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id == "hf_config"
            and isinstance(node.args[1], ast.Constant)):
        return node.args[1].value
    return None


def _conversions(text: str) -> dict[str, dict]:
    """Every ``hf_config.architectures = ["T"]`` in a convertor class of MODEL_ARCH_CONFIG_CONVERTORS, with what
    the ``if`` tests whose body holds it read: the architectures compared with, the other hf_config fields, the
    files checked (file_or_path_exists) and the attribute each is read into (get_hf_file_to_dict)."""
    tree = ast.parse(text)
    table = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "MODEL_ARCH_CONFIG_CONVERTORS" for t in n.targets))
    types_of: dict[str, list[str]] = {}
    for k, v in zip(table.keys, table.values):
        types_of.setdefault(v.id, []).append(k.value)
    out: dict[str, dict] = {}

    def visit(stmts: list[ast.stmt], tests: list[ast.expr], body: list[ast.stmt], cls: str) -> None:
        for s in stmts:
            if isinstance(s, ast.If):
                visit(s.body, tests + [s.test], s.body, cls)
                visit(s.orelse, tests, s.orelse, cls)
            elif (isinstance(s, ast.Assign) and isinstance(s.targets[0], ast.Attribute)
                  and s.targets[0].attr == "architectures" and isinstance(s.value, ast.List)):
                source, fields, files = None, set(), []
                for node in (n for t in tests for n in ast.walk(t)):
                    if (isinstance(node, ast.Compare) and _getattr_name(node.left) == "architectures"
                            and isinstance(node.comparators[0], ast.List)):
                        source = [e.value for e in node.comparators[0].elts]
                    elif _getattr_name(node) not in (None, "architectures"):
                        fields.add(_getattr_name(node))
                    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                          and node.func.id == "file_or_path_exists"):
                        files.append(node.args[1].value)
                into = {b.value.args[0].value: b.targets[0].attr for b in body if isinstance(b, ast.Assign)
                        and isinstance(b.value, ast.Call) and getattr(b.value.func, "id", "") == "get_hf_file_to_dict"}
                assert sorted(into) == sorted(files), (cls, files, into)  # each checked file is read
                (target,) = [e.value for e in s.value.elts]
                assert target not in out, target
                out[target] = {"model_types": sorted(types_of[cls]), "source": source, "fields": sorted(fields),
                               "reads": into, "line": s.lineno}
            elif isinstance(s, (ast.FunctionDef, ast.ClassDef)):
                visit(s.body, [], s.body, s.name if isinstance(s, ast.ClassDef) else cls)

    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in types_of:
            visit(node.body, [], node.body, node.name)
    return out


def _upstream(rel: str) -> str:
    path = UPSTREAM_SRC / rel
    if not path.is_file():
        pytest.skip(f"no upstream source at {UPSTREAM_SRC}")
    return path.read_text()


def test_the_table_is_every_conversion_upstreams_convertors_make():
    found = _conversions(_upstream(ARCH_CONVERTOR_MODULE))
    table = {arch: {**conv, "model_types": sorted(conv["model_types"]), "fields": sorted(conv["fields"])}
             for arch, conv in ARCH_CONVERSIONS.items()}
    assert table == found
    assert found["D3ForSequenceClassification"]["reads"] == {"decision_config.json": "decision_config"}
    # where the finding says upstream converts: before the registry resolves the (converted) architectures
    lines = _upstream("vllm/config/model.py").splitlines()
    assert "self.model_arch_config = self.get_model_arch_config()" in lines[694 - 1]
    assert "registry.inspect_model_cls(architectures, self)" in lines[741 - 1]


def test_the_recomputation_sees_a_new_conversion():
    """A conversion added upstream (another convertor class, a file it reads) changes what the test recomputes."""
    text = '''
class ModelArchConfigConvertorBase:
    pass
class NewConvertor(ModelArchConfigConvertorBase):
    def __init__(self, hf_config, hf_text_config, revision=None):
        if getattr(hf_config, "architectures", None) == ["FooModel"]:
            if getattr(hf_config, "bar", 0) and file_or_path_exists(hf_config.name_or_path, "baz.json", revision):
                hf_config.architectures = ["FooForBaz"]
                hf_config.baz = get_hf_file_to_dict("baz.json", hf_config.name_or_path, revision)
        elif getattr(hf_config, "architectures", None) == ["Other"]:
            hf_config.architectures = ["OtherTarget"]
MODEL_ARCH_CONFIG_CONVERTORS = {"foo": NewConvertor, "foo_v2": NewConvertor}
'''
    assert _conversions(text) == {
        "FooForBaz": {"model_types": ["foo", "foo_v2"], "source": ["FooModel"], "fields": ["bar"],
                      "reads": {"baz.json": "baz"}, "line": 8},
        "OtherTarget": {"model_types": ["foo", "foo_v2"], "source": ["Other"], "fields": [], "reads": {}, "line": 11}}


def test_the_pinned_vllm_converts_none_of_them():
    if not PINNED_SRC.is_dir():
        pytest.skip(f"no pinned vLLM at {PINNED_SRC}")
    assert not (PINNED_SRC / ARCH_CONVERTOR_MODULE.removeprefix("vllm/")).exists()
    texts = [p.read_text(errors="replace") for sub in ("config", "transformers_utils", "engine")
             for p in (PINNED_SRC / sub).rglob("*.py")]
    for arch, conv in ARCH_CONVERSIONS.items():
        assert not any(f'"{arch}"' in t for t in texts), arch
        assert not any(f'"{name}"' in t for name in conv["reads"] for t in texts), conv["reads"]
    # the lines the finding names on the pinned side
    assert ARCH_CONVERSIONS_ABSENT["0.13.0"].startswith("ModelConfig.architectures returns hf_config.architectures, "
                                                        "vllm/config/model.py:674; :511")
    lines = (PINNED_SRC / "config" / "model.py").read_text().splitlines()
    assert lines[674 - 1].strip() == "def architectures(self) -> list[str]:"
    assert lines[675 - 1].strip() == 'return getattr(self.hf_config, "architectures", [])'
    assert "registry.inspect_model_cls(architectures, self)" in lines[511 - 1]
    # the --hf-overrides the fix spells: a list value goes to get_config's config.update, a dict value (a file's
    # content) is set as the attribute when the config has no sub-config of that name
    text = "\n".join(lines)
    assert "if isinstance(value, dict):\n                    dict_overrides[key] = value" in text
    assert "# It's a dict-valued parameter - set it directly\n                setattr(config, key, value)" in text


D3_MESSAGE = (
    "architecture D3ForSequenceClassification: a released checkpoint names Qwen3_5Model in config.json (model_type "
    "qwen3_5); upstream's ModelConfig converts it to D3ForSequenceClassification before choosing the model class when "
    "the checkpoint holds decision_config.json, which it reads into hf_config.decision_config "
    "(vllm/transformers_utils/model_arch_config_convertor.py:647, run at vllm/config/model.py:694); the pinned vLLM "
    "0.13.0 converts no architecture and resolves config.json's as they are (ModelConfig.architectures returns "
    "hf_config.architectures, vllm/config/model.py:674; :511 resolves them): it builds the class registered under "
    "the checkpoint's own architecture, if any, never D3ForSequenceClassification, and reads no decision_config.json")
D3_FIX = ("serve a released checkpoint with --hf-overrides '{\"architectures\": [\"D3ForSequenceClassification\"], "
          "\"decision_config\": <the content of decision_config.json>}' (what upstream's conversion sets), and say so "
          "in the report")


def test_the_finding_names_the_source_the_file_and_the_overrides():
    assert arch_conversion("D3ForSequenceClassification", "0.13.0") == (D3_MESSAGE, D3_FIX)
    assert arch_conversion("D3ForSequenceClassification", "0.33.0") is None  # a pin that converts: nothing
    assert arch_conversion("Qwen3_5ForConditionalGeneration", "0.13.0") is None  # a source, not a target
    message, fix = arch_conversion("MiMoV2OmniForCausalLM", "0.13.0")
    assert "of model_type mimo_v2 / mimo_v2_flash names its own architecture" in message
    assert "depending on config.json's vision_config" in message and "reads no" not in message
    assert fix.startswith("serve a released checkpoint with --hf-overrides '{\"architectures\": "
                          "[\"MiMoV2OmniForCausalLM\"]}'")
    # the validator's path: reported whatever hook the plugin maps the architecture to
    found = [f for f in framework_findings("D3ForSequenceClassification", "vllm_fl/__init__.py", 3, 0,
                                           hooked={"D3ForSequenceClassification"}, version="0.13.0")
             if f.rule == "P25"]
    assert [(f.severity, f.message, f.fix) for f in found] == [("warning", D3_MESSAGE, D3_FIX)]


def test_plan_d3_leaves_the_conversion_for_you(tmp_path):
    """plan/apply on d3 (the real upstream file): the conversion is left, beside the ported hook's warning."""
    from flagos_migrate.migrate.engine import Migration
    from flagos_migrate.migrate.upstream import Upstream, open_upstream
    from flagos_migrate.pinned.api_index import PinnedApis
    from flagos_migrate.plugin.tree import PluginTree

    if not UPSTREAM_SRC.is_dir():
        pytest.skip(f"no upstream source at {UPSTREAM_SRC}")
    m = Migration("d3", Upstream(open_upstream(str(UPSTREAM_SRC))), PluginTree(empty_plugin(tmp_path / "p")),
                  PinnedApis.load("0.13.0")).run()
    left = [(f.severity, f.message, f.fix) for f in m.model_unit.after if f.rule == "P25"]
    assert ("warning", D3_MESSAGE, D3_FIX) in left, left
    assert len(left) == 2, left  # and the ported hook's serve-defaults warning


def test_a_match_failure_is_never_tied_to_the_conversion():
    """verify --run builds the registered class by name, so the conversion cannot be why logits differ: its left
    entry is marked, and a match failure with only it left names no finding (with a hook's P25 beside it, that one)."""
    from flagos_migrate.catalog.findings import Finding
    from flagos_migrate.verify import left_findings as L

    (conversion,) = [f for f in framework_findings("D3ForSequenceClassification", "vllm_fl/models/d3.py", 65,
                                                   version="0.13.0") if "released checkpoint" in f.message]
    hook = Finding("P25", "vllm_fl/models/d3.py", 65, 0, "architecture D3ForSequenceClassification: the ported "
                   "D3ForSequenceClassificationConfig sets `is_causal`", severity="warning")
    left = L.record_entries([conversion, hook], {})
    assert [e.get("runtime_unseen") for e in left] == [True, None]
    error = {"level": "match", "message": "max |Δlogit| 3.45, tolerance 0.001 (vllm-0.33.0)"}
    assert L.explain("match", error, left[:1], arch="D3ForSequenceClassification") is None
    got = L.explain("match", error, left, arch="D3ForSequenceClassification")
    assert got["finding"] == "P25 at vllm_fl/models/d3.py:65" and got["rule"] == "P25", got
