"""The fused-MoE back-port (P22, ``vllm_fl/compat/fused_moe.py``) on the real vLLM 0.13.0.

Numerical checks build ``FusedMoEFactory`` layers on CPU over the pinned ``FusedMoE`` and compare
their forward with a dense PyTorch reference written here from upstream's routing rules: a loop
over tokens and their chosen experts, each expert a plain gate/up/down MLP. Loading checks feed
upstream's checkpoint names (per expert, stacked, transposed, Mixtral's w1/w2/w3, the hand-written
loader with ``fused_moe_make_expert_params_mapping``) and compare the fused parameters. They skip
without $MMF_PINNED_VENV.
"""

from __future__ import annotations

import ast

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

BP = backports.FUSED_MOE


def test_the_table_repoints_the_upstream_names_and_needed_finds_them():
    tree = ast.parse("from vllm.model_executor.layers.fused_moe import FusedMoEFactory, GateLinear\n"
                     "from vllm.model_executor.layers.fused_moe.utils import resolve_layer_fused_shared_expert\n")
    assert backports.needed([tree]) == [backports.GATE_LINEAR, backports.FUSED_MOE_ROUTING, BP]
    assert backports.for_import("vllm.model_executor.layers.fused_moe", "fused_moe_make_expert_params_mapping") is BP
    assert backports.for_import("vllm.model_executor.layers.fused_moe.runner.moe_runner", "MoERunner") is BP
    # names the pinned vLLM has keep their pinned home
    assert backports.for_import("vllm.model_executor.layers.fused_moe", "fused_topk") is None
    assert backports.for_import("vllm.model_executor.layers.fused_moe", "FusedMoE") is None


COMMON = '''
    import torch.nn.functional as F
    from vllm.model_executor.layers.linear import ReplicatedLinear
    import fused_moe as fm

    E, H, I = 8, 16, 12
    torch.manual_seed(0)

    def act(name, g, u, limit=None):
        if name == "gelu_tanh":
            return F.gelu(g, approximate="tanh") * u
        if limit is not None:
            return F.silu(g.clamp(max=limit)) * u.clamp(-limit, limit)
        return F.silu(g) * u

    def reference(x, logits, W, *, top_k, renormalize=True, scoring="softmax", bias=None, groups=None,
                  scale=1.0, scale_on_output=False, custom=None, on_input=False, activation="silu",
                  limit=None, shared=None):
        """Per token: upstream's routing, written plainly; then each chosen expert as a dense MLP."""
        out = torch.zeros_like(x)
        for t in range(x.shape[0]):
            if custom is not None:
                w, ids = custom(hidden_states=x[t:t + 1], gating_output=logits[t:t + 1], topk=top_k,
                                renormalize=renormalize)
                chosen = list(zip(ids[0].tolist(), w[0].float().tolist()))
            else:
                s = logits[t].float().softmax(-1) if scoring == "softmax" else logits[t].float().sigmoid()
                choice = s + bias if bias is not None else s.clone()
                if groups is not None:
                    n_group, topk_group = groups
                    per = E // n_group
                    def group_score(gi):
                        part = choice[gi * per:(gi + 1) * per]
                        return part.topk(2).values.sum() if bias is not None else part.max()
                    keep = sorted(range(n_group), key=lambda gi: -float(group_score(gi)))[:topk_group]
                    allowed = [e for gi in keep for e in range(gi * per, (gi + 1) * per)]
                else:
                    allowed = list(range(E))
                ids = sorted(allowed, key=lambda e: -float(choice[e]))[:top_k]
                ws = [float(s[e]) for e in ids]
                if renormalize:
                    ws = [v / sum(ws) for v in ws]
                # upstream scales the routing weights in grouped and biased routing only
                if (groups is not None or bias is not None) and not scale_on_output:
                    ws = [v * scale for v in ws]
                chosen = list(zip(ids, ws))
            for e, w in chosen:
                g, u, d = W[e]
                xin = x[t] * w if on_input else x[t]
                y = d @ act(activation, g @ xin, u @ xin, limit)
                out[t] += y if on_input else w * y
        if scale_on_output:
            out = out * scale
        return out + (shared(x) if shared is not None else 0)

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.g, self.u = torch.nn.Linear(H, I, bias=False), torch.nn.Linear(H, I, bias=False)
            self.d = torch.nn.Linear(I, H, bias=False)
        def forward(self, x):
            return self.d(F.silu(self.g(x)) * self.u(x))

    def experts_weights():
        return {e: (torch.randn(I, H), torch.randn(I, H), torch.randn(H, I) / 4) for e in range(E)}

    def per_expert_ckpt(W, names=("gate_proj", "down_proj", "up_proj")):
        out = []
        for e, (g, u, d) in W.items():
            out += [(f"{e}.{names[0]}.weight", g), (f"{e}.{names[1]}.weight", d), (f"{e}.{names[2]}.weight", u)]
        return out

    COUNT = [0]
    def build(**kw):
        COUNT[0] += 1
        return fm.FusedMoEFactory(num_experts=E, hidden_size=H, intermediate_size=I, params_dtype=torch.float32,
                                  prefix=f"model.layers.{COUNT[0]}.mlp.experts", **kw)
'''

ROUTING = COMMON + '''
    def llama4_routing(hidden_states, gating_output, topk, renormalize):
        w, ids = torch.topk(gating_output, topk, dim=-1)
        return torch.sigmoid(w.float()), ids.to(torch.int32)

    bias = torch.randn(E) * 0.3
    CASES = {
        "softmax_renorm": dict(top_k=2),
        "softmax_plain": dict(top_k=2, renormalize=False),
        "sigmoid_topk": dict(top_k=2, scoring_func="sigmoid", routed_scaling_factor=2.0),
        "sigmoid_bias_scaled": dict(top_k=3, scoring_func="sigmoid", e_score_correction_bias=bias,
                                    routed_scaling_factor=2.5),
        "grouped_softmax_shared": dict(top_k=2, use_grouped_topk=True, num_expert_group=4, topk_group=2,
                                       routed_scaling_factor=1.5, shared=True),
        "grouped_sigmoid_bias": dict(top_k=3, use_grouped_topk=True, num_expert_group=4, topk_group=2,
                                     scoring_func="sigmoid", e_score_correction_bias=bias,
                                     routed_scaling_factor=2.5, renormalize=True),
        "grouped_bias_scale_on_output_shared": dict(top_k=3, use_grouped_topk=True, num_expert_group=2,
                                                    topk_group=1, scoring_func="sigmoid",
                                                    e_score_correction_bias=bias, routed_scaling_factor=2.5,
                                                    apply_routed_scale_to_output=True, shared=True),
        "custom_on_input": dict(top_k=1, custom_routing_function=llama4_routing,
                                apply_router_weight_on_input=True),
        "gelu_tanh": dict(top_k=2, activation="gelu_tanh"),
        "swiglu_limit": dict(top_k=2, swiglu_limit=0.5),
    }
    for name, kw in CASES.items():
        shared = MLP() if kw.pop("shared", False) else None
        gate = ReplicatedLinear(H, E, bias=False, prefix="gate")
        gate.weight.data.normal_()
        layer = build(gate=gate, shared_experts=shared, **kw)
        W = experts_weights()
        loaded = set(layer.load_weights(per_expert_ckpt(W)))
        x = torch.randn(11, H)
        with torch.no_grad():
            out = layer(hidden_states=x, router_logits=x)  # the runner holds the gate: logits ignored
            ref = reference(x, x @ gate.weight.T, W, top_k=kw["top_k"], renormalize=kw.get("renormalize", True),
                            scoring=kw.get("scoring_func", "softmax"), bias=kw.get("e_score_correction_bias"),
                            groups=(kw["num_expert_group"], kw["topk_group"]) if kw.get("use_grouped_topk") else None,
                            scale=kw.get("routed_scaling_factor", 1.0),
                            scale_on_output=kw.get("apply_routed_scale_to_output", False),
                            custom=kw.get("custom_routing_function"),
                            on_input=kw.get("apply_router_weight_on_input", False),
                            activation=kw.get("activation", "silu"), limit=kw.get("swiglu_limit"), shared=shared)
        err = (out - ref).abs().max().item()
        print(name, loaded == {"routed_experts.w13_weight", "routed_experts.w2_weight"} and err < 1e-4 * max(1.0, ref.abs().max().item()), err)

    # no gate in the runner: the caller's router_logits route
    layer = build(top_k=2)
    W = experts_weights()
    list(layer.load_weights(per_expert_ckpt(W)))
    x, logits = torch.randn(7, H), torch.randn(7, E)
    with torch.no_grad():
        err = (layer(x, logits) - reference(x, logits, W, top_k=2)).abs().max().item()
    print("external_logits", err < 1e-4, err)


    # the back-port's CPU loop is the pinned CPU kernel's method: same result as CPUFusedMOE
    from vllm.model_executor.layers.fused_moe import cpu_fused_moe
    re = layer.routed_experts
    pinned_kernel = cpu_fused_moe.CPUFusedMOE(re)
    with torch.no_grad():
        theirs = pinned_kernel(re, x, False, 2, logits, True, global_num_experts=E)
        ours = re.run(x, logits)
    print("pinned_cpu_kernel", torch.allclose(theirs, ours, atol=1e-5), (theirs - ours).abs().max().item())

    # LongCat-Flash's zero experts (upstream's ZeroExpertRouter): the router scores E real and Z identity
    # experts with the correction bias; an identity expert gives the token times its (scaled) weight
    Z = 3
    zbias = torch.randn(E + Z) * 0.3
    zlayer = build(top_k=3, renormalize=False, e_score_correction_bias=zbias, routed_scaling_factor=2.0,
                  zero_expert_type="identity")
    ZW = experts_weights()
    list(zlayer.load_weights(per_expert_ckpt(ZW)))
    zx, zlogits = torch.randn(13, H), torch.randn(13, E + Z)
    ref, chose_zero = torch.zeros_like(zx), 0
    for t in range(zx.shape[0]):
        s = zlogits[t].softmax(-1)
        for e in sorted(range(E + Z), key=lambda e: -float(s[e] + zbias[e]))[:3]:
            if e >= E:
                ref[t] += 2.0 * s[e] * zx[t]
                chose_zero += 1
            else:
                g, u, d = ZW[e]
                ref[t] += 2.0 * s[e] * (d @ act("silu", g @ zx[t], u @ zx[t]))
    with torch.no_grad():
        got = zlayer(zx, zlogits)
    err = (got - ref).abs().max().item()
    print("zero_experts_identity", err < 1e-4 * max(1.0, ref.abs().max().item()) and 0 < chose_zero < 39, err)

    # the correction bias is a parameter of the layer, as upstream registers it: a checkpoint's
    # ...mlp.experts.e_score_correction_bias loads into it and steers the routing (Laguna)
    bparam = torch.nn.Parameter(torch.zeros(E), requires_grad=False)
    blayer = build(top_k=2, scoring_func="sigmoid", e_score_correction_bias=bparam)
    BW = experts_weights()
    steer = torch.randn(E) * 2.0
    bloaded = set(blayer.load_weights(per_expert_ckpt(BW) + [("e_score_correction_bias", steer)]))
    bx, blogits = torch.randn(9, H), torch.randn(9, E)
    with torch.no_grad():
        bgot = blayer(bx, blogits)
    bref = reference(bx, blogits, BW, top_k=2, scoring="sigmoid", bias=steer)
    unsteered = reference(bx, blogits, BW, top_k=2, scoring="sigmoid", bias=torch.zeros(E))
    print("bias_parameter_loads", "e_score_correction_bias" in bloaded
          and "e_score_correction_bias" in dict(blayer.named_parameters()) and torch.equal(bparam.data, steer)
          and (bgot - bref).abs().max().item() < 1e-4 * max(1.0, bref.abs().max().item())
          and (bref - unsteered).abs().max().item() > 1e-3)

    # upstream's RoutedExperts has no read-only tp_size: DbrxExperts assigns it in __init__
    class AssignsTpSize(fm.RoutedExperts):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            before = self.tp_size
            self.tp_size = self.moe_config.tp_size
            self.per_rank = I // self.tp_size
            self.before = before

    layer = build(top_k=2, routed_experts_cls=AssignsTpSize)
    re = layer.routed_experts
    print("assigned_tp_size", re.tp_size == re.before == 1 and re.per_rank == I and "_assigned_tp_size" in vars(re))
'''


# Nemotron-H's non-gated experts (relu2 without a gate, checkpoint up_proj/down_proj), which 0.13.0's
# FusedMoE refuses off CUDA: built, loaded under upstream's names, and equal to a dense per-expert reference
NON_GATED = """
    layer = build(top_k=2, activation="relu2_no_mul", ckpt_names=("up_proj", "down_proj", None),
                  use_grouped_topk=True, num_expert_group=2, topk_group=1, scoring_func="sigmoid",
                  routed_scaling_factor=2.0)
    re = layer.routed_experts
    U = {e: (torch.randn(I, H), torch.randn(H, I) / 4) for e in range(E)}
    loaded = set(layer.load_weights([(f"{e}.{n}.weight", t) for e, (u, d) in U.items()
                                     for n, t in (("up_proj", u), ("down_proj", d))]))
    x, logits = torch.randn(9, H), torch.randn(9, E)
    with torch.no_grad():
        out = layer(x, logits)
        ref = torch.zeros_like(x)
        for t in range(x.shape[0]):
            s = logits[t].sigmoid()
            per = E // 2
            best = max(range(2), key=lambda gi: float(s[gi * per:(gi + 1) * per].max()))
            ids = sorted(range(best * per, (best + 1) * per), key=lambda e: -float(s[e]))[:2]
            ws = [float(s[e]) for e in ids]
            for e, w in zip(ids, ws):
                ref[t] += 2.0 * w / sum(ws) * (U[e][1] @ torch.relu(U[e][0] @ x[t]).square())
    err = (out - ref).abs().max().item()
    print("non_gated", tuple(re.w13_weight.shape) == (E, I, H) and not re.moe_config.is_act_and_mul
          and torch.equal(re.w13_weight, torch.stack([U[e][0] for e in range(E)]))
          and loaded == {"routed_experts.w13_weight", "routed_experts.w2_weight"}
          and err < 1e-4 * max(1.0, ref.abs().max().item()), err)
"""


@pytest.fixture(scope="module")
def pinned_run(tmp_path_factory) -> dict[str, str]:
    """One pinned-vLLM process for both halves (importing vLLM dominates the time)."""
    return run_in_pinned_venv(tmp_path_factory.mktemp("fused_moe"), ROUTING + LOADING + NON_GATED)


@pytest.mark.slow
def test_non_gated_experts_build_load_and_match_on_cpu(pinned_run):
    assert pinned_run["non_gated"].startswith("True"), pinned_run["non_gated"]


@pytest.mark.slow
def test_forward_matches_a_dense_reference_over_the_routing_variants(pinned_run):
    lines = pinned_run
    for case in ("softmax_renorm", "softmax_plain", "sigmoid_topk", "sigmoid_bias_scaled", "grouped_softmax_shared",
                 "grouped_sigmoid_bias", "grouped_bias_scale_on_output_shared", "custom_on_input", "gelu_tanh",
                 "swiglu_limit", "external_logits", "zero_experts_identity", "bias_parameter_loads",
                 "pinned_cpu_kernel"):
        assert lines[case].startswith("True"), (case, lines[case])
    assert lines["assigned_tp_size"] == "True"  # fails on a back-port whose tp_size has no setter


LOADING = '''
    from vllm.model_executor.models.utils import AutoWeightsLoader

    def fused_equal(layer, W):
        re = layer.routed_experts
        w13 = torch.stack([torch.cat([W[e][0], W[e][1]]) for e in range(E)])
        w2 = torch.stack([W[e][2] for e in range(E)])
        return torch.equal(re.w13_weight, w13) and torch.equal(re.w2_weight, w2)

    # a model whose checkpoint says model.layers.0.mlp.experts.<e>.<proj>.weight, through the pinned loader
    class Block(torch.nn.Module):
        def __init__(self, **kw):
            super().__init__()
            self.experts = build(top_k=2, **kw)
    class Model(torch.nn.Module):
        def __init__(self, **kw):
            super().__init__()
            self.mlp = Block(**kw)
        def load_weights(self, weights):
            return AutoWeightsLoader(self).load_weights(weights)

    W = experts_weights()
    m = Model()
    loaded = m.load_weights([("mlp.experts." + n, t) for n, t in per_expert_ckpt(W)])
    print("per_expert", fused_equal(m.mlp.experts, W)
          and loaded == {"mlp.experts.routed_experts.w13_weight", "mlp.experts.routed_experts.w2_weight"})

    # stacked checkpoints: experts.gate_up_proj [E, 2I, H] and experts.down_proj [E, H, I]
    layer = build(top_k=2)
    gate_up = torch.stack([torch.cat([W[e][0], W[e][1]]) for e in range(E)])
    down = torch.stack([W[e][2] for e in range(E)])
    list(layer.load_weights([("gate_up_proj", gate_up), ("down_proj", down)]))
    print("stacked", fused_equal(layer, W))
    layer = build(top_k=2, is_fused_checkpoint_transposed=True)
    list(layer.load_weights([("gate_up_proj", gate_up.transpose(1, 2).contiguous()),
                             ("down_proj", down.transpose(1, 2).contiguous())]))
    print("stacked_transposed", fused_equal(layer, W))
    layer = build(top_k=2)  # one expert's fused gate_up_proj
    list(layer.load_weights([(f"{e}.gate_up_proj.weight", torch.cat([W[e][0], W[e][1]])) for e in range(E)]
                            + [(f"{e}.down_proj.weight", W[e][2]) for e in range(E)]))
    print("per_expert_gate_up", fused_equal(layer, W))
    layer = build(top_k=2, ckpt_names=("w1", "w2", "w3"))  # Mixtral's names
    list(layer.load_weights(per_expert_ckpt(W, names=("w1", "w2", "w3"))))
    print("mixtral_names", fused_equal(layer, W))

    # the hand-written loader of DeepSeek-style models: mapping rows, params_dict, weight_loader
    m = Model()
    mapping = fm.fused_moe_make_expert_params_mapping(m, ckpt_gate_proj_name="gate_proj",
                                                      ckpt_down_proj_name="down_proj",
                                                      ckpt_up_proj_name="up_proj", num_experts=E)
    params = dict(m.named_parameters())
    done = set()
    for name, t in [("mlp.experts." + n, t) for n, t in per_expert_ckpt(W)]:
        for param_name, weight_name, expert_id, shard_id in mapping:
            if weight_name not in name:
                continue
            name = name.replace(weight_name, param_name)
            param = params[name]
            if param.weight_loader(param, t, name, shard_id=shard_id, expert_id=expert_id, return_success=True):
                done.add(name)
            break
    print("mapping_rows", mapping[:2] == [("experts.routed_experts.w13_", "experts.0.gate_proj.", 0, "w1"),
                                          ("experts.routed_experts.w2_", "experts.0.down_proj.", 0, "w2")])
    print("hand_written", fused_equal(m.mlp.experts, W)
          and done == {"mlp.experts.routed_experts.w13_weight", "mlp.experts.routed_experts.w2_weight"})

    # a draft built from the pinned DeepseekV2DecoderLayer (deepseek_eagle, openpangu_mtp): 0.13.0's FusedMoE
    # holds experts.w13_weight, and the rows name those (the routed_experts ones raised KeyError at load)
    from vllm.model_executor.layers.fused_moe import FusedMoE
    pinned_moe = torch.nn.Module()
    pinned_moe.mlp = torch.nn.Module()
    pinned_moe.mlp.experts = FusedMoE(num_experts=E, top_k=2, hidden_size=H, intermediate_size=I, prefix="mlp.experts")
    rows = fm.fused_moe_make_expert_params_mapping(pinned_moe, ckpt_gate_proj_name="gate_proj",
                                                   ckpt_down_proj_name="down_proj", ckpt_up_proj_name="up_proj",
                                                   num_experts=E)
    print("pinned_layer_rows", rows[:2] == [("experts.w13_", "experts.0.gate_proj.", 0, "w1"),
                                            ("experts.w2_", "experts.0.down_proj.", 0, "w2")]
          and all(p in dict(pinned_moe.named_parameters()) for p in ("mlp.experts.w13_weight", "mlp.experts.w2_weight")))

    # DBRX's hand-written loader as P34 rewrites it: checkpoint names mapped onto experts.w13_weight (the
    # pre-refactor name; KeyError on upstream, vllm#49004), looked up through upstream's remap helper
    m = Model()
    params = dict(m.named_parameters(remove_duplicate=False))
    mapping = [("w13" if w in ("w1", "v1") else "w2", f"mlp.{w}") for w in ("w1", "v1", "w2")]
    ckpt = [("mlp.experts.mlp.w1", torch.cat([W[e][0] for e in range(E)])),
            ("mlp.experts.mlp.v1", torch.cat([W[e][1] for e in range(E)])),
            ("mlp.experts.mlp.w2", torch.cat([W[e][2].T for e in range(E)]))]  # DBRX stores w2 as [E*I, H]
    done = set()
    for name, t in ckpt:
        name = name + "_weight"
        for param_name, weight_name in mapping:
            if weight_name not in name:
                continue
            name = name.replace(weight_name, param_name)
            name = fm.maybe_remap_moe_expert_param_name(name, params)
            param = params[name]
            per = t.reshape(E, -1, H)  # DbrxExperts.weight_loader's reshape, here per shard
            with torch.no_grad():
                if weight_name.endswith("w1"):
                    param[:, :I, :] = per
                elif weight_name.endswith("v1"):
                    param[:, I:, :] = per
                else:
                    param[:] = per.transpose(1, 2)
            done.add(name)
            break
    keeps = (fm.maybe_remap_moe_expert_param_name("mlp.experts.routed_experts.w2_weight", params)
             == "mlp.experts.routed_experts.w2_weight"
             and fm.maybe_remap_moe_expert_param_name("lm_head.weight", params) == "lm_head.weight"
             and fm.maybe_remap_moe_expert_param_name("mlp.experts.w13_weight", {}) == "mlp.experts.w13_weight")
    print("dbrx_remap", fused_equal(m.mlp.experts, W) and keeps
          and done == {"mlp.experts.routed_experts.w13_weight", "mlp.experts.routed_experts.w2_weight"})

    # EPLB hooks: without expert parallelism they answer like the pinned layer; EPLB on CPU is refused
    layer = build(top_k=2)
    layer.update_expert_map()
    weights = list(layer.get_expert_weights())
    print("eplb_hooks", layer.expert_map is None and len(weights) == 2 and all(w.shape[0] == E for w in weights))
    for bad, kw in (("eplb", dict(enable_eplb=True)), ("fused_shared", dict(fuse_shared_experts=True, n_shared_experts=1)),
                    ("zero_experts", dict(zero_expert_type="drop", e_score_correction_bias=torch.zeros(E))),
                    ("sqrtsoftplus", dict(scoring_func="sqrtsoftplus"))):
        try:
            build(top_k=2, **kw)
            print("refuses_" + bad, False)
        except NotImplementedError as exc:
            print("refuses_" + bad, bool(str(exc)))
'''


@pytest.mark.slow
def test_upstream_checkpoint_names_load_into_the_fused_parameters(pinned_run):
    lines = pinned_run
    for check in ("per_expert", "stacked", "stacked_transposed", "per_expert_gate_up", "mixtral_names", "mapping_rows",
                  "hand_written", "pinned_layer_rows", "dbrx_remap", "eplb_hooks", "refuses_eplb", "refuses_fused_shared", "refuses_zero_experts",
                  "refuses_sqrtsoftplus"):
        assert lines[check] == "True", check
