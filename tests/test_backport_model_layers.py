"""Small back-ports the DeepSeek-family, Cohere2-MoE, K2-Horizon and HunYuan V3 files need (P22), on the real vLLM 0.13.0.

- ``sparse_mla.py``: ``SparseAttnIndexer`` calls the pinned ``torch.ops.vllm.sparse_attn_indexer``
  (checked here against that op's registered schema: the arguments the back-port passes are the
  ones 0.13.0's own ``Indexer`` passes) and refuses what the pinned op lacks; the forward is
  DeepGEMM-only (CUDA), which this CPU machine cannot run, so on CPU it must say so instead of
  returning anything. ``SparseMLAIndexGroupBuilder`` is refused (0.13.0's MLA takes no index groups).
- ``layer_name.py``: a layer name reaches a custom op registered the pinned way as the same string.
- ``hpc_rope_norm.py``: ``HpcRopeNorm.support`` is False, as upstream's is without the HPC_ATTN
  attention backend, which the pinned ``AttentionBackendEnum`` does not have; ``QkNormPolicy`` has
  upstream's values.
- ``fused_moe_kernel.py``: upstream's ``dispatch_fused_moe_kernel`` parameters are, in order and
  with defaults, those of the pinned ``invoke_fused_moe_kernel`` it calls.

The runtime halves skip without $MMF_PINNED_VENV.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

UPSTREAM = Path(os.path.expanduser("~/.cache/mmf/src/vllm-0.33.0/vllm"))


def test_the_table_repoints_the_upstream_names():
    tree = ast.parse(
        "from vllm.model_executor.layers.sparse_attn_indexer import SparseAttnIndexer, fused_indexer_q_rope_quant\n"
        "from vllm.v1.attention.backends.mla.index_group import SparseMLAIndexGroupBuilder\n"
        "from vllm.utils.torch_utils import LayerNameType, _encode_layer_name, direct_register_custom_op\n"
        "from vllm.model_executor.layers.fused_moe.fused_moe import dispatch_fused_moe_kernel\n")
    # which names the pinned vLLM lacks decides; here every name counts as missing
    assert backports.needed([tree]) == [backports.SPARSE_MLA, backports.LAYER_NAME, backports.FUSED_MOE_KERNEL]
    assert backports.for_import("vllm.model_executor.layers.sparse_attn_indexer",
                                "fused_indexer_q_rope_quant") is None  # a helper: vendored (P16)
    assert backports.for_import("vllm.utils.torch_utils", "direct_register_custom_op") is None
    # the fused-MoE back-port brings its routing module along
    fm = ast.parse("from vllm.model_executor.layers.fused_moe import FusedMoEFactory\n")
    assert backports.needed([fm]) == [backports.FUSED_MOE_ROUTING, backports.FUSED_MOE]


def _params(fn: ast.FunctionDef) -> list[tuple[str, str | None]]:
    args = fn.args.posonlyargs + fn.args.args
    defaults = [None] * (len(args) - len(fn.args.defaults)) + [ast.unparse(d) for d in fn.args.defaults]
    return [(a.arg, d) for a, d in zip(args, defaults)]


def _function(path: Path, name: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(path.read_text("utf-8")).body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_dispatch_fused_moe_kernel_takes_upstreams_parameters():
    source = upstream = backports.SOURCES / "fused_moe_kernel.py"
    upstream = UPSTREAM / "model_executor/layers/fused_moe/fused_moe.py"
    if not upstream.exists():
        pytest.skip("the upstream vLLM 0.33.0 source is not unpacked at ~/.cache/mmf/src/vllm-0.33.0")
    assert _params(_function(source, "dispatch_fused_moe_kernel")) == \
        _params(_function(upstream, "dispatch_fused_moe_kernel"))


def test_qk_norm_policy_has_upstreams_values():
    upstream = UPSTREAM / "model_executor/layers/hpc/rope_norm.py"
    if not upstream.exists():
        pytest.skip("the upstream vLLM 0.33.0 source is not unpacked at ~/.cache/mmf/src/vllm-0.33.0")

    def members(path):
        cls = next(n for n in ast.parse(path.read_text("utf-8")).body
                   if isinstance(n, ast.ClassDef) and n.name == "QkNormPolicy")
        return [(s.targets[0].id, ast.literal_eval(s.value)) for s in cls.body if isinstance(s, ast.Assign)]

    assert members(backports.SOURCES / "hpc_rope_norm.py") == members(upstream) != []


SPARSE = '''
    import inspect
    from vllm.model_executor.layers.fused_moe.fused_moe import invoke_fused_moe_kernel
    import vllm.model_executor.models.deepseek_v2 as pinned_ds  # registers torch.ops.vllm.sparse_attn_indexer
    import sparse_mla, layer_name, fused_moe_kernel

    # the pinned op's schema against what the back-port's forward passes (names as the pinned Indexer)
    schema = torch.ops.vllm.sparse_attn_indexer.default._schema
    print("op_args", ",".join(a.name for a in schema.arguments))
    src = inspect.getsource(sparse_mla.SparseAttnIndexer.forward)
    call = src[src.index("torch.ops.vllm.sparse_attn_indexer("):]
    print("passes", call.count(",") + 1 - call.count(",)"))

    class Cache:
        prefix = "model.layers.0.self_attn.indexer.k_cache"
        kv_cache = [torch.zeros(0)]

    buf = torch.zeros(4, 8, dtype=torch.int32)
    op = sparse_mla.SparseAttnIndexer(Cache(), 128, "ue8m0", 8, 128, 64, 64, buf)
    try:
        op(torch.zeros(2, 16), torch.zeros(2, 4, 128), torch.zeros(2, 128), torch.zeros(2, 4))
        print("cpu_forward", "returned")
    except RuntimeError as exc:
        print("cpu_forward", "CUDA is not available" in str(exc))
    refused = []
    for kw in (dict(use_fp4_cache=True), dict(compress_ratio=4), dict(candidate_blocks=buf),
               dict(skip_k_cache_insert=True)):
        try:
            sparse_mla.SparseAttnIndexer(Cache(), 128, "ue8m0", 8, 128, 64, 64, buf, **kw)
        except NotImplementedError as exc:
            refused.append(next(iter(kw)) in str(exc) or "FP4" in str(exc) or "candidate" in str(exc))
    print("refused", refused == [True] * 4)
    try:
        sparse_mla.SparseMLAIndexGroupBuilder(buf)
        print("group", "built")
    except NotImplementedError as exc:
        print("group", "index_group_builder" in str(exc))

    # a layer name through a custom op registered the pinned way, typed as upstream types it
    from vllm.utils.torch_utils import direct_register_custom_op
    seen = []

    def probe(x: torch.Tensor, layer_name: layer_name.LayerNameType) -> torch.Tensor:
        seen.append(layer_name_mod._resolve_layer_name(layer_name))
        return x.clone()

    layer_name_mod = layer_name
    direct_register_custom_op("mmf_layer_name_probe", probe, mutates_args=[],
                              fake_impl=lambda x, layer_name: torch.empty_like(x))
    torch.ops.vllm.mmf_layer_name_probe(torch.ones(2), layer_name._encode_layer_name("model.layers.3.mlp"))
    print("layer_name", seen == ["model.layers.3.mlp"])
    from vllm.attention.backends.registry import AttentionBackendEnum
    import hpc_rope_norm
    print("no_hpc_backend", "HPC_ATTN" not in AttentionBackendEnum.__members__
          and not hpc_rope_norm.HpcRopeNorm.support(8, 2, 128, "auto"))
    print("torch_below_2_11", tuple(int(p) for p in torch.__version__.split(".")[:2]) < (2, 11))

    pinned = inspect.signature(invoke_fused_moe_kernel).parameters
    ours = inspect.signature(fused_moe_kernel.dispatch_fused_moe_kernel).parameters
    print("kernel_params", [(n, p.default) for n, p in pinned.items()] == [(n, p.default) for n, p in ours.items()])
    # upstream's unsorted path (sorted_token_ids=None) is served: test_runtime_moe_ops checks what it computes
'''


@pytest.mark.slow
def test_sparse_mla_layer_name_and_kernel_backports_on_the_real_pinned_vllm(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, SPARSE)
    assert lines["op_args"] == ("hidden_states,k_cache_prefix,kv_cache,q_fp8,k,weights,quant_block_size,"
                                "scale_fmt,topk_tokens,head_dim,max_model_len,total_seq_lens,topk_indices_buffer")
    assert lines["passes"] == "13"
    for check in ("cpu_forward", "refused", "group", "layer_name", "no_hpc_backend", "torch_below_2_11",
                  "kernel_params"):
        assert lines[check] == "True", check


def test_a_backported_name_used_only_in_annotations_comes_from_the_backport_not_type_checking():
    # torch's infer_schema reads a custom op's annotations at run time: under TYPE_CHECKING the
    # quoted "LayerNameType" fails there (cohere2_moe's ops), so the back-port wins over P14
    from tests.analysis_helpers import analyze, only

    findings = analyze("""
    from vllm.utils.torch_utils import LayerNameType, direct_register_custom_op
    def op(x, layer_name: LayerNameType):
        return x
    direct_register_custom_op("op", op)
    """)
    assert not only(findings, "P14")
    (f,) = [f for f in only(findings, "P3") if f.data.get("name") == "LayerNameType"]
    assert f.data["backport"] == "vllm_fl.compat.layer_name"
