"""The back-ports (P22): their table entries, and their behaviour on the real vLLM 0.13.0.

The runtime halves build real 0.13.0 layers on CPU in the venv named by $MMF_PINNED_VENV: the
stacked weights load checkpoint-shaped q/k/v and gate/up tensors through the back-ported mapper
and loader into QKVParallelLinear / MergedColumnParallelLinear; GateLinear computes router logits
in its out_dtype. They skip without that venv.
"""

from __future__ import annotations

import ast
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports
from flagos_migrate.pinned.api_index import PinnedApis
from flagos_migrate.verify.import_probe import python_of

BP = backports.STACKED_WEIGHTS


def _source_tree() -> ast.Module:
    return ast.parse(BP.text())


@pytest.mark.parametrize("bp", backports.BACKPORTS, ids=lambda b: b.source)
def test_every_backport_defines_its_names_and_the_pinned_vllm_needs_it(bp):
    tree = ast.parse(bp.text())
    defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
    defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    exported = next(ast.literal_eval(n.value) for n in tree.body
                    if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__")
    names = {name for name, _ in bp.names}
    assert names <= defined and names <= set(exported)
    assert bp.module == "vllm_fl.compat." + bp.source.removesuffix(".py")
    apis = PinnedApis.load("0.13.0")
    for name, module in bp.names:
        sym = apis.resolve(module, name)
        if not bp.keywords and (name, module) not in bp.on_import and not bp.members:
            # (an on_import name exists on the pinned vLLM and behaves differently: activation.py's lookup,
            # rope.py's get_rope)
            assert sym is None, f"the pinned vLLM has {module}.{name}: the back-port is not needed"
        assert backports.for_import(module, name) is bp
    pinned_homes = {a.name: n.module for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
                    if a.asname == f"_Pinned{a.name}"}
    for cls, attr in bp.members:  # a subclass adding members: the pinned class it extends lacks each one
        sym = apis.resolve(pinned_homes[cls], cls)
        assert sym is not None and apis.class_has_member(sym, attr) is False, (cls, attr)
        assert backports.for_member(cls, attr) is bp


def test_the_backport_defines_what_it_shadows_and_takes_its_keywords():
    tree = _source_tree()
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert set(BP.shadowed()) <= set(classes)
    for cls, kw in BP.keywords:
        fields = {s.target.id for s in classes[cls].body if isinstance(s, ast.AnnAssign)}
        assert kw in fields, (cls, kw)
    # it extends the pinned classes it shadows (isinstance keeps working), never replaces them
    for name, module in BP.shadowed().items():
        bases = [ast.unparse(b) for b in classes[name].bases]
        assert bases == [f"_Pinned{name}"]
        assert f"from {module} import {name} as _Pinned{name}" in BP.text()


def test_the_pinned_classes_reject_the_keywords_so_the_backport_is_needed():
    apis = PinnedApis.load("0.13.0")
    for cls, kw in BP.keywords:
        sym = apis.resolve(BP.shadowed()[cls], cls)
        sig = apis.callable_signature(sym)
        assert kw not in set(sig["p"]) | set(sig["k"])


@pytest.mark.parametrize("callee", ["WeightsMapper", "vllm.model_executor.models.utils.WeightsMapper",
                                    "vllm.model_executor.models.utils.WeightsMapper.__init__"])
def test_for_keyword_matches_the_ways_the_analysis_shows_a_callee(callee):
    assert backports.for_keyword(callee, "orig_to_new_stacked") is BP
    assert backports.for_keyword(callee, "orig_to_new_prefix") is None
    assert backports.for_keyword("OtherMapper", "orig_to_new_stacked") is None


def test_needed_scans_calls_in_any_module():
    uses = ast.parse("m = utils.WeightsMapper(orig_to_new_regex={})\n")
    plain = ast.parse("m = WeightsMapper(orig_to_new_prefix={})\nloader = AutoWeightsLoader(self)\n")
    assert backports.needed([plain]) == []
    assert backports.needed([plain, uses]) == [BP]
    gate = ast.parse("from vllm.model_executor.layers.fused_moe import GateLinear, fused_topk\n")
    assert backports.needed([gate]) == [backports.GATE_LINEAR]
    assert backports.needed([gate], pinned_lacks=lambda module, name: False) == []  # a pin that has it


# vLLM 0.13.0 on a CPU-only machine: a CPU device config and a one-rank gloo group for the layers
CPU_SETUP = textwrap.dedent('''
    import socket, sys, types
    sys.path.insert(0, sys.argv[1])
    # the back-ports import each other as vllm_fl.compat.<name>: that package is the sources folder here
    sys.modules["vllm_fl"] = types.ModuleType("vllm_fl")
    sys.modules["vllm_fl"].__path__ = []
    sys.modules["vllm_fl.compat"] = types.ModuleType("vllm_fl.compat")
    sys.modules["vllm_fl.compat"].__path__ = [sys.argv[1]]
    import torch
    from vllm.config import DeviceConfig, VllmConfig, set_current_vllm_config
    CONFIG = set_current_vllm_config(VllmConfig(device_config=DeviceConfig(device="cpu")))
    CONFIG.__enter__()  # kept referenced: the context ends when the generator is collected
    from vllm.distributed import init_distributed_environment, initialize_model_parallel
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    init_distributed_environment(world_size=1, rank=0, local_rank=0,
                                 distributed_init_method=f"tcp://127.0.0.1:{port}", backend="gloo")
    initialize_model_parallel(1, 1)
''')


def run_in_pinned_venv(tmp_path: Path, body: str) -> dict[str, str]:
    """Run CPU_SETUP + body with the real pinned vLLM; the "name value" lines it prints."""
    venv = os.environ.get("MMF_PINNED_VENV")
    if not venv:
        pytest.skip("MMF_PINNED_VENV (a venv with the real vLLM 0.13.0) is not set")
    script = tmp_path / "run.py"
    script.write_text(CPU_SETUP + textwrap.dedent(body))
    proc = subprocess.run([python_of(venv), str(script), str(backports.SOURCES)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


RUNTIME = '''
    from vllm.model_executor.layers.linear import (MergedColumnParallelLinear, QKVParallelLinear,
                                                   RowParallelLinear)
    from vllm.model_executor.models import utils as pinned
    import stacked_weights as sw

    STACKED = {".q_proj": (".qkv_proj", "q"), ".k_proj": (".qkv_proj", "k"), ".v_proj": (".qkv_proj", "v"),
               ".gate_proj": (".gate_up_proj", 0), ".up_proj": (".gate_up_proj", 1),
               ".tied_proj": (".gate_up_proj", [0, 1])}

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv_proj = QKVParallelLinear(8, 4, 2, 1, bias=False)   # q 8 rows, k 4, v 4
            self.gate_up_proj = MergedColumnParallelLinear(8, [6, 6], bias=False)
            self.o_proj = RowParallelLinear(8, 8, bias=False)

    class Model(torch.nn.Module):
        mapper = sw.WeightsMapper(orig_to_new_stacked=STACKED, orig_to_new_prefix={"model.": ""},
                                  orig_to_new_substr={".dropped.": None})
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([Layer(), Layer()])
        def load_weights(self, weights):
            return sw.AutoWeightsLoader(self).load_weights(weights, mapper=self.mapper)

    torch.manual_seed(0)
    t = {n: torch.randn(r, 8) for n, r in [("q", 8), ("k", 4), ("v", 4), ("g", 6), ("u", 6), ("o", 8)]}
    m = Model()
    ckpt = [("model.layers.0.self_attn.q_proj.weight", t["q"]), ("model.layers.0.self_attn.k_proj.weight", t["k"]),
            ("model.layers.0.self_attn.v_proj.weight", t["v"]), ("model.layers.0.mlp.gate_proj.weight", t["g"]),
            ("model.layers.0.mlp.up_proj.weight", t["u"]), ("model.layers.0.o_proj.weight", t["o"]),
            ("model.layers.1.mlp.tied_proj.weight", t["g"]), ("model.layers.1.x.dropped.weight", t["o"])]
    ckpt = [(n.replace(".self_attn", "").replace(".mlp", ""), w) for n, w in ckpt]
    loaded = m.load_weights(ckpt)
    l0, l1 = m.layers
    print("loaded", sorted(loaded))
    print("qkv", torch.equal(l0.qkv_proj.weight, torch.cat([t["q"], t["k"], t["v"]])))
    print("gate_up", torch.equal(l0.gate_up_proj.weight, torch.cat([t["g"], t["u"]])))
    print("untagged", torch.equal(l0.o_proj.weight, t["o"]))
    print("list", torch.equal(l1.gate_up_proj.weight, torch.cat([t["g"], t["g"]])))
    left = pinned.WeightsMapper(orig_to_new_prefix={"a.": "b."}) | Model.mapper
    print("ror", type(left) is sw.WeightsMapper and left.orig_to_new_stacked == STACKED
          and left.orig_to_new_prefix["a."] == "b.")
    # quantization configs name modules: they see upstream's get_rename_mapper() (no stacking, no drops)
    print("dict", Model.mapper.apply_dict({"model.layers.0.q_proj": 1, "x.dropped.y": 2})
          == {"layers.0.q_proj": 1, "x.dropped.y": 2})
    print("isinstance", isinstance(Model.mapper, pinned.WeightsMapper))
'''


@pytest.mark.slow
def test_stacked_loading_on_the_real_pinned_vllm(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, RUNTIME)
    assert lines["loaded"] == str(sorted(["layers.0.qkv_proj.weight", "layers.0.gate_up_proj.weight",
                                          "layers.0.o_proj.weight", "layers.1.gate_up_proj.weight"]))
    for check in ("qkv", "gate_up", "untagged", "list", "ror", "dict", "isinstance"):
        assert lines[check] == "True", check


CHILD_RUNTIME = '''
    from vllm.model_executor.layers.linear import MergedColumnParallelLinear, QKVParallelLinear
    from vllm.model_executor.models.qwen2 import Qwen2Model
    import stacked_weights as sw

    class Layer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv_proj = QKVParallelLinear(8, 4, 2, 1, bias=False)
            self.gate_up_proj = MergedColumnParallelLinear(8, [6, 6], bias=False)

    class Child(torch.nn.Module):  # a language model whose load_weights is the pinned Qwen2Model's (hand stacking)
        load_weights = Qwen2Model.load_weights
        def __init__(self):
            super().__init__()
            self.quant_config = None
            self.layers = torch.nn.ModuleList([Layer()])

    class Model(torch.nn.Module):  # upstream's MOSS-Audio: the outer mapper stacks gate/up
        mapper = sw.WeightsMapper(orig_to_new_stacked={".gate_proj": (".gate_up_proj", 0), ".up_proj": (".gate_up_proj", 1)},
                                  orig_to_new_prefix={"language_model.layers.": "language_model.model.layers."})
        def __init__(self):
            super().__init__()
            self.language_model = torch.nn.Module()
            self.language_model.model = Child()
        def load_weights(self, weights):
            return sw.AutoWeightsLoader(self).load_weights(weights, mapper=self.mapper)

    torch.manual_seed(0)
    t = {n: torch.randn(r, 8) for n, r in [("q", 8), ("k", 4), ("v", 4), ("g", 6), ("u", 6)]}
    m = Model()
    loaded = m.load_weights([(f"language_model.layers.0.{p}.weight", t[p[0]]) for p in
                             ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")])
    layer = m.language_model.model.layers[0]
    print("loaded", sorted(loaded))
    print("gate_up", torch.equal(layer.gate_up_proj.weight, torch.cat([t["g"], t["u"]])))
    print("qkv", torch.equal(layer.qkv_proj.weight, torch.cat([t["q"], t["k"], t["v"]])))
'''


@pytest.mark.slow
def test_a_pinned_childs_own_loader_gets_the_stacked_tensors_under_their_checkpoint_names(tmp_path: Path):
    # before: the pinned Qwen2Model loader got 'layers.0.gate_up_proj.weight' and its `"up_proj" in name` made
    # it gate_gate_up_proj (moss_audio's load level: KeyError 'layers.0.mlp.gate_gate_up_proj.weight')
    lines = run_in_pinned_venv(tmp_path, CHILD_RUNTIME)
    assert lines["loaded"] == str(sorted(["language_model.model.layers.0.gate_up_proj.weight",
                                          "language_model.model.layers.0.qkv_proj.weight"]))
    assert lines["gate_up"] == "True" and lines["qkv"] == "True"


GATE_RUNTIME = '''
    from vllm.model_executor.layers.linear import ReplicatedLinear
    from gate_linear import GateLinear

    torch.manual_seed(0)
    gate = GateLinear(8, 4, out_dtype=torch.float32, params_dtype=torch.bfloat16, prefix="mlp.gate")
    gate.weight.data.copy_(torch.randn(4, 8).to(torch.bfloat16))
    x = torch.randn(3, 8).to(torch.bfloat16)
    logits, bias = gate(x)
    expected = torch.nn.functional.linear(x, gate.weight).float()
    print("tuple", bias is None and logits.dtype == torch.float32 and torch.allclose(logits, expected))
    print("replicated", isinstance(gate, ReplicatedLinear) and gate.weight.dtype == torch.bfloat16)
    late = GateLinear(8, 4, params_dtype=torch.bfloat16, return_bias=False)
    print("plain", late(x).dtype == torch.bfloat16)
    late.set_out_dtype(torch.float32)
    print("late", late(x).dtype == torch.float32)
    try:
        late.set_out_dtype(torch.float16)
        print("twice", False)
    except ValueError:
        print("twice", True)
    fp32 = GateLinear(8, 4, force_fp32_compute=True, params_dtype=torch.bfloat16, return_bias=False)
    print("fp32", fp32.weight.dtype == torch.float32 and fp32(x.float()).dtype == torch.float32)
'''


@pytest.mark.slow
def test_gate_linear_on_the_real_pinned_vllm(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, GATE_RUNTIME)
    for check in ("tuple", "replicated", "plain", "late", "twice", "fp32"):
        assert lines[check] == "True", check


SHORT_CONV_RUNTIME = '''
    from types import SimpleNamespace
    from vllm.model_executor.layers.linear import UnquantizedLinearMethod
    from vllm.model_executor.layers.mamba.short_conv import ShortConv as Pinned
    from vllm.model_executor.layers.quantization.fp8 import Fp8Config, Fp8LinearMethod
    from short_conv import ShortConv

    cfg = SimpleNamespace(conv_L_cache=3, conv_bias=False)
    pinned = Pinned(cfg, 16, 0, prefix="pinned.conv")
    plain = ShortConv(cfg, 16, 0, quant_config=None, prefix="plain.conv")
    shapes = lambda m: {n: tuple(p.shape) for n, p in m.named_parameters()}
    print("unquantized", shapes(plain) == shapes(pinned) and isinstance(plain, Pinned)
          and isinstance(plain.in_proj.quant_method, UnquantizedLinearMethod))
    fp8 = ShortConv(cfg, 16, 0, quant_config=Fp8Config(is_checkpoint_fp8_serialized=True), prefix="fp8.conv")
    print("quantized", isinstance(fp8.in_proj.quant_method, Fp8LinearMethod)
          and isinstance(fp8.out_proj.quant_method, Fp8LinearMethod)
          and fp8.in_proj.weight.dtype == torch.float8_e4m3fn and hasattr(fp8.in_proj, "weight_scale"))
    print("conv", isinstance(fp8.conv.quant_method, UnquantizedLinearMethod)
          and tuple(fp8.conv.weight.shape) == (16, 1, 3))
'''


@pytest.mark.slow
def test_short_conv_takes_upstreams_quant_config_on_the_real_pinned_vllm(tmp_path: Path):
    # unquantized: exactly the pinned layer; quantized: the projections quantized as upstream's are
    lines = run_in_pinned_venv(tmp_path, SHORT_CONV_RUNTIME)
    for check in ("unquantized", "quantized", "conv"):
        assert lines[check] == "True", check


TOKEN_POOLER_RUNTIME = '''
    import tempfile
    from types import SimpleNamespace
    from vllm.config import PoolerConfig
    from vllm.model_executor.layers.pooler import AllPooler, StepPooler
    from vllm.pooling_params import PoolingParams
    from token_pooler import pooler_for_token_embed

    # the head reads the current model config: a local folder without sentence-transformers modules
    from vllm.config import get_current_vllm_config
    object.__setattr__(get_current_vllm_config(), "model_config",
                       SimpleNamespace(head_dtype=torch.float32, model=tempfile.mkdtemp(), revision=None))
    torch.manual_seed(0)
    proj = torch.nn.Linear(8, 4, bias=True)
    pooler = pooler_for_token_embed(PoolerConfig(pooling_type="CLS"), projector=proj)
    hidden = torch.randn(5, 8)
    with torch.no_grad():
        out = pooler.head(hidden, PoolingParams(normalize=True))
        ref = torch.nn.functional.normalize(proj(hidden), p=2, dim=-1)  # upstream: projector, then normalise
        cut = pooler.head(hidden, PoolingParams(normalize=False, dimensions=2))
    print("all_tokens", type(pooler) is AllPooler and pooler.head.projector is proj)
    print("projected", torch.allclose(out, ref, atol=1e-6) and torch.allclose(cut, proj(hidden)[..., :2].detach()))
    print("step", type(pooler_for_token_embed(PoolerConfig(pooling_type="STEP"))) is StepPooler)
    print("no_projector", pooler_for_token_embed(PoolerConfig(pooling_type="ALL")).head.projector is None)

    # token classification: upstream's default activation from the HF config, the pinned head's order
    from token_pooler import pooler_for_token_classify
    from vllm.model_executor.layers.pooler import PoolerIdentity, PoolerMultiLabelClassify
    def classify_head(hf_config, **kw):
        object.__setattr__(get_current_vllm_config(), "model_config", SimpleNamespace(
            head_dtype=torch.float32, hf_config=hf_config, pooler_config=PoolerConfig(logit_bias=0.5)))
        return pooler_for_token_classify(PoolerConfig(pooling_type="ALL"), **kw)
    cls = torch.nn.Linear(8, 3, bias=False)
    tok = classify_head(SimpleNamespace(num_labels=0), classifier=cls)
    with torch.no_grad():
        scores = tok.head(hidden, PoolingParams(use_activation=True))
        ref = torch.softmax(cls(hidden) - 0.5, dim=-1)  # classifier, minus the logit offset, softmax over 3
    print("classify", type(tok) is AllPooler and torch.allclose(scores, ref, atol=1e-6))
    print("regression", type(classify_head(SimpleNamespace(problem_type="regression")).head.act_fn) is PoolerIdentity)
    print("multi_label", type(classify_head(SimpleNamespace(problem_type="multi_label_classification")).head.act_fn)
          is PoolerMultiLabelClassify)
    st = classify_head(SimpleNamespace(sentence_transformers={"activation_fn": "torch.nn.modules.activation.Tanh"}))
    print("st_activation", torch.allclose(st.head.act_fn(hidden), torch.tanh(hidden)))
    print("step_cls", type(pooler_for_token_classify(PoolerConfig(pooling_type="STEP"))) is StepPooler)
    try:
        pooler_for_token_classify(PoolerConfig(pooling_type="ALL"), pooling=object())
        print("pooling_refused", False)
    except NotImplementedError:
        print("pooling_refused", True)
    # RoBERTa's BGE-M3 sparse head: upstream's AllPool() (the pinned AllPool once migrated) whatever the config says
    from vllm.model_executor.layers.pooler import AllPool
    object.__setattr__(get_current_vllm_config(), "scheduler_config", SimpleNamespace(enable_chunked_prefill=False))
    allpool = classify_head(SimpleNamespace(num_labels=0), pooling=AllPool(), classifier=cls, act_fn=torch.relu)
    allpool_step = pooler_for_token_classify(PoolerConfig(pooling_type="STEP"), pooling=AllPool())
    with torch.no_grad():
        relu = allpool.head(hidden, PoolingParams(use_activation=True))
    print("allpool", type(allpool) is AllPooler and type(allpool_step) is AllPooler
          and torch.allclose(relu, torch.relu(cls(hidden) - 0.5)))
'''


@pytest.mark.slow
def test_token_pooler_is_the_pinned_pooler_with_the_models_projector(tmp_path: Path):
    # upstream's TokenPooler(ALL or STEP, head: head_dtype, projector, dimensions, normalise) on 0.13.0's classes
    lines = run_in_pinned_venv(tmp_path, TOKEN_POOLER_RUNTIME)
    # upstream's pooler_for_token_classify(pooler_config) on 0.13.0's Pooler.for_token_classify
    for check in ("all_tokens", "projected", "step", "no_projector", "classify", "regression", "multi_label",
                  "st_activation", "step_cls", "pooling_refused", "allpool"):
        assert lines[check] == "True", (check, lines)


def test_reading_a_member_the_pinned_class_lacks_needs_the_backport():
    # jamba's JambaForSequenceClassification: `DispatchPooler.for_seq_cls(...)`; a plain mapping does not
    seq_cls = ast.parse("from vllm.model_executor.layers.pooler import DispatchPooler\n"
                        "p = DispatchPooler.for_seq_cls(cfg, classifier=score)\n")
    plain = ast.parse("from vllm.model_executor.layers.pooler import DispatchPooler\np = DispatchPooler({})\n")
    assert backports.needed([seq_cls]) == [backports.DISPATCH_POOLER]
    assert backports.needed([plain], pinned_lacks=lambda module, name: False) == []
    # minimax_m2: upstream's module path (absent on 0.13.0; P13 would find the pinned layer in mamba.linear_attn)
    minimax = ast.parse("from vllm.model_executor.layers.minimax_rms_norm import MiniMaxText01RMSNormTP\n"
                        "q, k, v = MiniMaxText01RMSNormTP.forward_qkv(a, b, qkv, 8, 4)\n")
    assert backports.needed([minimax], pinned_lacks=lambda module, name: False) == [backports.MINIMAX_RMS_NORM]


DISPATCH_POOLER_RUNTIME = '''
    import tempfile
    from types import SimpleNamespace
    from vllm.config import PoolerConfig, get_current_vllm_config
    from vllm.model_executor.layers.pooler import AllPooler, ClassifierPooler, LastPool, SimplePooler
    from vllm.pooling_params import PoolingParams
    from dispatch_pooler import DispatchPooler

    # the poolers read the current model config: a single-label classifier (softmax), no cross-encoder act
    object.__setattr__(get_current_vllm_config(), "model_config", SimpleNamespace(
        head_dtype=torch.float32, pooler_config=PoolerConfig(pooling_type="LAST"), model=tempfile.mkdtemp(),
        revision=None,
        hf_config=SimpleNamespace(problem_type="single_label_classification", num_labels=3)))
    torch.manual_seed(0)
    score = torch.nn.Linear(8, 3, bias=False)
    cls_pooler = DispatchPooler.for_seq_cls(PoolerConfig(pooling_type="LAST"), classifier=score)
    byt = cls_pooler.poolers_by_task
    print("tasks", sorted(byt) == ["classify", "score", "token_classify"] and isinstance(cls_pooler, DispatchPooler))
    print("kinds", type(byt["token_classify"]) is AllPooler and type(byt["classify"]) is ClassifierPooler
          and isinstance(byt["classify"].pooling, LastPool) and byt["classify"].classifier is score)
    # the classify head on the pooled (last) token: the model's classifier, then softmax (dense reference)
    hidden = torch.randn(5, 8)
    md = SimpleNamespace(pooling_params=[PoolingParams(use_activation=True)])  # as verify() resolves it
    own = ClassifierPooler(pooling=lambda h, m: h[-1:], classifier=score, act_fn="classify")
    with torch.no_grad():
        got = own(hidden, md)
        ref = torch.softmax(score(hidden[-1:]), dim=-1)
        passed = DispatchPooler.for_seq_cls(PoolerConfig(pooling_type="LAST"), classifier=score,
                                            pooling=lambda h, m: h[-1:]).poolers_by_task["classify"](hidden, md)
    print("classified", torch.allclose(got, ref, atol=1e-6) and torch.allclose(passed, ref, atol=1e-6))
    emb = DispatchPooler.for_embedding(PoolerConfig(pooling_type="LAST")).poolers_by_task
    print("embedding", sorted(emb) == ["embed", "token_embed"] and type(emb["embed"]) is SimplePooler
          and type(emb["token_embed"]) is AllPooler)
'''


@pytest.mark.slow
def test_dispatch_pooler_factories_build_the_pinned_poolers(tmp_path: Path):
    # upstream's for_seq_cls / for_embedding as 0.13.0's own models spell the mapping (jamba.py, bert.py)
    lines = run_in_pinned_venv(tmp_path, DISPATCH_POOLER_RUNTIME)
    for check in ("tasks", "kinds", "classified", "embedding"):
        assert lines[check] == "True", (check, lines)


MINIMAX_NORM_RUNTIME = '''
    from minimax_rms_norm import MiniMaxText01RMSNormTP as Norm

    torch.manual_seed(0)
    q_norm, k_norm = Norm(8, eps=1e-6), Norm(4, eps=1e-6)
    with torch.no_grad():
        q_norm.weight.copy_(torch.rand(8) + 0.5)
        k_norm.weight.copy_(torch.rand(4) + 0.5)
        qkv = torch.randn(5, 16)
        q, k, v = Norm.forward_qkv(q_norm, k_norm, qkv, 8, 4)

    def rms(x, w):  # dense reference: RMSNorm over the whole q (k) of a token, in fp32
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    print("qkv", torch.allclose(q, rms(qkv[:, :8], q_norm.weight), atol=1e-6)
          and torch.allclose(k, rms(qkv[:, 8:12], k_norm.weight), atol=1e-6) and torch.equal(v, qkv[:, 12:]))
    print("same_as_pinned", torch.allclose(q_norm(qkv[:, :8]), q, atol=1e-6))
    # K-norm sharded by KV head (upstream: KV heads replicated across TP ranks): shard 1 of 2
    shard = Norm(4, eps=1e-6, weight_shard_world_size=2, weight_shard_rank=1)
    full = torch.arange(4.0)
    shard.weight.weight_loader(shard.weight, full)
    print("shard", tuple(shard.weight.shape) == (2,) and torch.equal(shard.weight.data, full[2:]))
    plain = Norm(4)
    plain.weight.weight_loader(plain.weight, full)
    print("unsharded", torch.equal(plain.weight.data, full))
'''


@pytest.mark.slow
def test_minimax_rms_norm_takes_upstreams_shard_keywords_and_forward_qkv(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, MINIMAX_NORM_RUNTIME)
    for check in ("qkv", "same_as_pinned", "shard", "unsharded"):
        assert lines[check] == "True", (check, lines)


QWEN2_MOE_MLP_RUNTIME = '''
    from vllm.model_executor.layers.linear import ReplicatedLinear
    from vllm.model_executor.models.qwen2_moe import Qwen2MoeMLP as Pinned
    from qwen2_moe_mlp import Qwen2MoeMLP

    torch.manual_seed(0)
    gate = ReplicatedLinear(16, 1, bias=False, prefix="mlp.shared_expert_gate")  # what upstream's callers pass
    gate.weight.data.normal_()
    mlp = Qwen2MoeMLP(16, 24, "silu", expert_gate=gate, prefix="mlp.shared_expert")
    for p in mlp.parameters():
        p.data.normal_(0, 0.2)
    x = torch.randn(5, 16)
    w13 = mlp.gate_up_proj.weight
    dense = torch.nn.functional.silu(x @ w13[:24].T) * (x @ w13[24:].T) @ mlp.down_proj.weight.T
    want = torch.sigmoid(x @ gate.weight.T) * dense  # upstream: sigmoid(expert_gate(x)[0]) * out
    print("upstream_gate", bool(torch.allclose(mlp(x), want, atol=1e-5)) and isinstance(mlp, Pinned))
    pinned = Pinned(16, 24, "silu", expert_gate=gate, prefix="p")
    try:
        pinned(x)
        print("pinned_refuses", False)
    except AttributeError as exc:  # the pinned forward applies the sigmoid to the (output, bias) tuple
        print("pinned_refuses", "tuple" in str(exc))
    plain = Qwen2MoeMLP(16, 24, "silu", prefix="q")
    shapes = lambda m: {n: tuple(p.shape) for n, p in m.named_parameters()}
    print("no_gate_same_layers", shapes(plain) == shapes(Pinned(16, 24, "silu", prefix="q")))
    rep = Qwen2MoeMLP(16, 24, "silu", disable_tp=True, prefix="r")
    print("disable_tp", rep.gate_up_proj.tp_size == 1 and rep.down_proj.tp_size == 1 and shapes(rep) == shapes(plain))
'''


@pytest.mark.slow
def test_qwen2_moe_mlp_takes_upstreams_gate_contract_on_the_real_pinned_vllm(tmp_path: Path):
    # Qwen3-Next / Qwen3.5 hand the shared expert a ReplicatedLinear gate: the pinned class crashes on it
    lines = run_in_pinned_venv(tmp_path, QWEN2_MOE_MLP_RUNTIME)
    for check in ("upstream_gate", "pinned_refuses", "no_gate_same_layers", "disable_tp"):
        assert lines[check] == "True", check


def test_importing_qwen2_moe_mlp_needs_the_backport_and_only_that_file_is_repointed():
    tree = ast.parse("from vllm.model_executor.models.qwen2_moe import Qwen2MoeMLP as Qwen3NextMLP\n")
    assert backports.needed([tree]) == [backports.QWEN2_MOE_MLP]
    assert backports.QWEN2_MOE_MLP.local  # other files' imports of the pinned class stay pinned
    other = ast.parse("from vllm.model_executor.models.qwen2_moe import Qwen2MoeForCausalLM\n")
    assert backports.needed([other]) == []


MM_KWARGS_RUNTIME = '''
    from types import SimpleNamespace

    from vllm.config import MultiModalConfig
    from vllm.multimodal.processing import InputProcessingContext
    from mm_processor_kwargs import get_merged_mm_kwargs

    configured = {"size": {"shortest_edge": 256}, "videos_kwargs": {"size": {"longest_edge": 1024}, "num_frames": 16}}
    mm = MultiModalConfig(mm_processor_kwargs=configured)
    ctx = SimpleNamespace(model_config=SimpleNamespace(get_multimodal_config=lambda: mm))
    print("pinned_lacks", not hasattr(InputProcessingContext, "get_merged_mm_kwargs"))
    request = {"size": {"shortest_edge": 512}, "videos_kwargs": {"fps": 4}}
    # upstream's docstring example (config/multimodal.py _merge_mm_processor_kwargs), then its resolution: the
    # flat `size` a scope holds leaves the flat namespace
    print("scoped", get_merged_mm_kwargs(ctx, request) == {
        "videos_kwargs": {"size": {"shortest_edge": 512, "longest_edge": 1024}, "num_frames": 16, "fps": 4}})
    print("pinned_flat_differs", mm.merge_mm_processor_kwargs(request) != get_merged_mm_kwargs(ctx, request))
    # no scope anywhere: what the pinned flat merge gives (internvl's image_size / dynamic patch keywords)
    flat = MultiModalConfig(mm_processor_kwargs={"max_dynamic_patch": 6})
    ctx_flat = SimpleNamespace(model_config=SimpleNamespace(get_multimodal_config=lambda: flat))
    print("flat_same", get_merged_mm_kwargs(ctx_flat, {"image_size": 448}) == flat.merge_mm_processor_kwargs(
        {"image_size": 448}) == {"max_dynamic_patch": 6, "image_size": 448})
    none = MultiModalConfig()
    ctx_none = SimpleNamespace(model_config=SimpleNamespace(get_multimodal_config=lambda: none))
    print("unset", get_merged_mm_kwargs(ctx_none, {}) == {})
'''


def test_merged_mm_kwargs_is_upstreams_merge_over_the_pinned_multimodal_config(tmp_path: Path):
    """internvl / glm4v / interns1 call self.ctx.get_merged_mm_kwargs(kwargs), which 0.13.0's InputProcessingContext
    lacks; the back-port is upstream's merge verbatim over the pinned MultiModalConfig (its own flat merge differs
    once a value is a scope mapping)."""
    assert backports.MM_PROCESSOR_KWARGS in backports.ON_IMPORT_ONLY
    lines = run_in_pinned_venv(tmp_path, MM_KWARGS_RUNTIME)
    for check in ("pinned_lacks", "scoped", "pinned_flat_differs", "flat_same", "unset"):
        assert lines[check] == "True", (check, lines)


PROMPT_UPDATE_RUNTIME = '''
    from vllm.multimodal import processing as pinned
    from prompt_update_details import PromptUpdateDetails

    print("pinned_lacks", not hasattr(pinned.PromptUpdateDetails, "select_token_ids"))
    details = PromptUpdateDetails.select_token_ids([5, 7, 5, 9, 3], [5, 9])
    print("pinned_class", type(details) is pinned.PromptUpdateDetails and details.full == [5, 7, 5, 9, 3])
    # what the pinned processor does with it (processing.py: content.is_embed(tokenizer, content.full))
    print("mask", details.is_embed(None, details.full).tolist() == [True, False, True, True, False])
    one = pinned.PromptUpdateDetails.select_token_id([5, 7, 5, 9, 3], 5).is_embed(None, [5, 7, 5, 9, 3])
    print("one_id_as_pinned", PromptUpdateDetails.select_token_ids([5, 7, 5, 9, 3], [5]).is_embed(
        None, [5, 7, 5, 9, 3]).tolist() == one.tolist())
'''


def test_select_token_ids_marks_the_positions_of_any_id_for_the_pinned_processor(tmp_path: Path):
    """isaac failed forward (type object 'PromptUpdateDetails' has no attribute 'select_token_ids'; minicpmv, mllama4,
    molmo2 call it too): upstream's method, the mask the pinned processor reads (is_embed(tokenizer, full))."""
    bp = backports.PROMPT_UPDATE_DETAILS
    assert backports.for_member("PromptUpdateDetails", "select_token_ids") is bp and bp.local
    lines = run_in_pinned_venv(tmp_path, PROMPT_UPDATE_RUNTIME)
    for check in ("pinned_lacks", "pinned_class", "mask", "one_id_as_pinned"):
        assert lines[check] == "True", (check, lines)


LANGUAGE_MODEL_UPSTREAM = '''
import sys
from types import SimpleNamespace

from torch import nn
from vllm.model_executor.models.interfaces import SupportsMultiModal

sys.path.insert(0, sys.argv[1])
from language_model import default_language_model, language_model_names

CONFIG = SimpleNamespace(model_config=SimpleNamespace(
    get_multimodal_config=lambda: SimpleNamespace(mm_encoder_only=False)))


class Decoder(nn.Module):  # GLMTransformer: no embed_input_ids
    def forward(self, x):
        return x


class TextModel(nn.Module):  # ChatGLMModel: embed_input_ids, its encoder a Decoder
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(4, 2)
        self.encoder = Decoder()

    def embed_input_ids(self, ids):
        return self.embedding(ids)

    def forward(self, x):
        return x


class Base(nn.Module):  # ChatGLMBaseModel: the children built in the base's __init__
    def __init__(self, order):
        super().__init__()
        for name in order:
            setattr(self, name, TextModel() if name.startswith("text") else nn.Linear(2, 2))


class Model(Base, SupportsMultiModal):
    def __init__(self, order, targets):
        with self._mark_language_model(CONFIG, targets=targets):
            super().__init__(order)


for case, order, targets in (("glm4v", ["vision", "text"], Decoder), ("prefix_is_lm", ["text"], TextModel),
                             ("two", ["lm_head", "text_a", "text_b"], Decoder)):
    model = Model(order, targets)
    upstream = model.get_language_model()
    ours = default_language_model(model, language_model_names(model, targets))
    print(case, ours is upstream, [n for n, m in model.named_modules() if m is ours])
'''


@pytest.mark.slow
def test_language_model_backport_is_upstreams_default(tmp_path: Path):
    """glm4v: a marker with targets= over super().__init__; the written get_language_model calls the back-port,
    which returns the module upstream's own SupportsMultiModal.get_language_model returns (the targets' common
    prefix when it has embed_input_ids, else the first child that has it)."""
    venv = os.environ.get("MMF_REFERENCE_VENV")
    if not venv:
        pytest.skip("MMF_REFERENCE_VENV (a venv with upstream vLLM) is not set")
    assert backports.LANGUAGE_MODEL in backports.ON_IMPORT_ONLY
    script = tmp_path / "run.py"
    script.write_text(LANGUAGE_MODEL_UPSTREAM)
    env = dict(os.environ, VLLM_TARGET_DEVICE="cpu", CUDA_VISIBLE_DEVICES="", VLLM_PLUGINS="")
    proc = subprocess.run([python_of(venv), str(script), str(backports.SOURCES)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    assert lines["glm4v"] == "True ['text']", lines  # the encoder has no embed_input_ids: the first child
    assert lines["prefix_is_lm"] == "True ['text']", lines
    assert lines["two"] == "True ['text_a']", lines  # no common prefix: the fallback


GPT_OSS_HOOKS_RUNTIME = '''
import vllm.platforms as platforms
from vllm.platforms.cpu import CpuPlatform
platforms._current_platform = CpuPlatform()  # 0.13 picks it only for CPU builds of vLLM
import types
from transformers import GptOssConfig
from vllm.model_executor.models import gpt_oss as pinned
import gpt_oss_hooks as hooks
from vllm.attention.layers.encoder_only_attention import EncoderOnlyAttention

cfg = GptOssConfig(vocab_size=64, hidden_size=32, intermediate_size=16, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, head_dim=8, num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
                   max_position_embeddings=128,
                   rope_scaling={"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64,
                                 "beta_fast": 32.0, "beta_slow": 1.0, "rope_theta": 10000.0})
if not getattr(cfg, "rope_parameters", None):
    cfg.rope_parameters = {"rope_theta": 10000.0, **cfg.rope_scaling}
from vllm.config import get_current_vllm_config
VC = get_current_vllm_config()
object.__setattr__(VC, "model_config", types.SimpleNamespace(hf_config=cfg, dtype=torch.float32, is_mm_prefix_lm=False))
vc = types.SimpleNamespace(model_config=VC.model_config, cache_config=VC.cache_config, quant_config=None,
                           parallel_config=VC.parallel_config, compilation_config=VC.compilation_config)

def build(cls, prefix):
    return cls(vllm_config=vc, prefix=prefix)

def describe(m):
    out = {n: tuple(p.shape) for n, p in m.named_parameters()}
    for n, mod in m.named_modules():
        if hasattr(mod, "is_neox_style"):
            out[n + ":neox"] = mod.is_neox_style
        if hasattr(mod, "attn_type") and hasattr(mod, "impl"):
            out[n + ":attn"] = (type(mod).__name__, str(mod.attn_type), mod.impl.sliding_window)
    return out

a = build(pinned.GptOssModel, "a.model")
b = build(hooks.GptOssModel, "b.model")
da = {k.replace("a.model", ""): v for k, v in describe(a).items()}
db = {k.replace("b.model", ""): v for k, v in describe(b).items()}
print("same_modules", da == db and len(da) > 10)
print("subclasses", isinstance(b, pinned.GptOssModel) and isinstance(b.layers[0], pinned.TransformerBlock)
      and isinstance(b.layers[0].attn, pinned.OAIAttention))
# same weights: the rope and projections compute the same
torch.manual_seed(0)
sd = {k: torch.randn_like(v) for k, v in a.state_dict().items()}
a.load_state_dict(sd); b.load_state_dict(sd)
pos = torch.arange(6)
same = True
for la, lb in zip(a.layers, b.layers):
    q = torch.randn(6, la.attn.q_size)
    k = torch.randn(6, la.attn.kv_size)
    ra = la.attn.rotary_emb(pos, q.clone(), k.clone())
    rb = lb.attn.rotary_emb(pos, q.clone(), k.clone())
    same = same and all(torch.equal(u, w) for u, w in zip(ra, rb))
    same = same and [type(m).__name__ for m in la.modules()] == [type(m).__name__ for m in lb.modules()]
    same = same and la.attn.attn.impl.sinks is la.attn.sinks and lb.attn.attn.impl.sinks is lb.attn.sinks
print("same_compute", same)
print("pinned_window", da["layers.0.attn.attn:attn"], da["layers.1.attn.attn:attn"])

# upstream's privacy filter, as migrated: its hooks now build what they name
class PFAttention(hooks.OAIAttention):
    rope_is_neox_style = False
    def _build_attention(self, config, cache_config, quant_config, prefix):
        return EncoderOnlyAttention(num_heads=self.num_local_attention_heads, head_size=self.head_dim,
                                    scale=self.scaling, num_kv_heads=self.num_local_key_value_heads,
                                    cache_config=cache_config, quant_config=quant_config,
                                    per_layer_sliding_window=config.sliding_window + 1, prefix=f"{prefix}.attn",
                                    sinks=self.sinks)
class PFBlock(hooks.TransformerBlock):
    attention_cls = PFAttention
class PFModel(hooks.GptOssModel):
    block_cls = PFBlock
c = build(PFModel, "c.model")
dc = describe(c)
L = [c.layers[i].attn for i in range(2)]
print("pf_hooks", all(a.rotary_emb.is_neox_style is False and type(a.attn).__name__ == "EncoderOnlyAttention"
                      and a.attn.impl.sliding_window == (4, 4) for a in L))
print("pf_attn", [(type(a.attn).__name__, str(a.attn.attn_type), a.attn.impl.sliding_window) for a in L])
print("pinned_neox", [a.layers[i].attn.rotary_emb.is_neox_style for i in range(2)])
'''


@pytest.mark.slow
def test_gpt_oss_hooks_build_the_pinned_layers_by_default_and_the_privacy_filters_when_overridden(tmp_path: Path):
    """openai_privacy_filter failed match (3.57): its GPT-J rope and bidirectional windowed attention come through
    upstream's gpt_oss hooks, which 0.13.0's classes lack. The back-port's defaults build the pinned GPT-OSS (same
    parameters, module types, windows, rope output); the privacy filter's overrides build what they name."""
    lines = run_in_pinned_venv(tmp_path, GPT_OSS_HOOKS_RUNTIME)
    for check in ("same_modules", "subclasses", "same_compute", "pf_hooks"):
        assert lines[check] == "True", (check, lines)
    assert lines["pinned_window"] == "('Attention', 'decoder', (3, 0)) ('Attention', 'decoder', (-1, -1))", lines
    assert lines["pinned_neox"] == "[True, True]", lines


def test_importing_gpt_oss_layers_needs_the_hooks_backport_only_there():
    tree = ast.parse("from vllm.model_executor.models.gpt_oss import GptOssForCausalLM, GptOssModel, OAIAttention\n")
    assert backports.needed([tree]) == [backports.GPT_OSS_HOOKS]
    assert backports.GPT_OSS_HOOKS.local
    assert backports.needed([ast.parse("from vllm.model_executor.models.gpt_oss import GptOssForCausalLM\n")]) == []
