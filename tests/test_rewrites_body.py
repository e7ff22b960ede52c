"""Before/after fixtures for the body rewrites (P4 unwrap, P6 kwarg drop, P9 attribute rename, P17 hooks)."""

from __future__ import annotations

import ast

from flagos_migrate.migrate.rewrites import Edits, apply_edits, mark_context_lines, parse

SRC = '''class M(nn.Module):
    def __init__(self, vllm_config, cache_config):
        super().__init__()
        # the tower
        with self._mark_tower_model(vllm_config, "image"):
            self.visual = Tower(1, 2)  # trailing comment
            self.proj = nn.Linear(2, 3)
        with self._mark_language_model(vllm_config): self.lm = LM()
        with open("x") as fh:
            self.data = fh.read()
        self.head = ParallelLMHead(
            10,
            20,
            disable_tp=True,
            prefix="head",
        )
        self.mapper = WeightsMapper(orig_to_new_stacked={"qkv": ("qkv_proj", 0)})
        if cache_config.mamba_cache_mode == "all":
            self.a = 1
        if cache_config.mamba_cache_mode != "none":
            self.b = 1
        if cache_config.mamba_cache_mode == "none":
            self.c = 1
        if cache_config.mamba_cache_mode == "align":
            self.d = 1

    @classmethod
    def get_mamba_state_copy_func(cls):
        return Calculator.gated_delta_net_state_copy_func()

    def forward(self, x):
        return x
'''


def test_mark_context_managers_found_and_unwrapped():
    lines = mark_context_lines(parse(SRC))
    assert lines == {5: "_mark_tower_model", 8: "_mark_language_model"}
    out = apply_edits(SRC, Edits(unwrap={5: "P4", 8: "P4"}))
    assert "with self._mark_" not in out
    # the tower's block keeps what unwrapping lost as a P26 comment, after the block's own comments
    assert ("        # the tower\n        # P26: built under self._mark_tower_model(vllm_config, \"image\") upstream, "
            "which skips it when the limit is 0\n        self.visual = Tower(1, 2)  # trailing comment\n") in out
    assert "        self.proj = nn.Linear(2, 3)\n        self.lm = LM()\n" in out
    assert 'with open("x") as fh:' in out  # other context managers untouched
    ast.parse(out)


def test_only_listed_lines_unwrapped():
    out = apply_edits(SRC, Edits(unwrap={8: "P4"}))
    assert "_mark_tower_model" in out and "_mark_language_model" not in out


def test_safe_kwarg_dropped_on_its_own_line_of_a_multiline_call():
    out = apply_edits(SRC, Edits(drop_kwargs={(14, "disable_tp"): "P6"}))
    assert "disable_tp" not in out
    assert '            20,\n            prefix="head",\n        )' in out
    assert "orig_to_new_stacked" in out  # only what the edits name
    ast.parse(out)


def test_dropping_the_last_keyword_keeps_the_closing_parenthesis_where_it_was():
    src = ("x = f(\n    a=1,\n    num_spec=v.n,\n)\ny = g(a=1, num_spec=2)\n"
           "z = g(\n    a=1,\n    num_spec=2)\nw = g(num_spec=2, a=1)\n")
    edits = Edits(drop_kwargs={(line, "num_spec"): "P6" for line in (1, 5, 6, 9)})
    assert apply_edits(src, edits) == "x = f(\n    a=1,\n)\ny = g(a=1)\nz = g(\n    a=1)\nw = g(a=1)\n"


def test_attribute_rename_follows_comparison_semantics():
    out = apply_edits(SRC, Edits(attr_renames={"mamba_cache_mode": "P9"}))
    assert "if cache_config.enable_prefix_caching:\n            self.a" in out
    assert "if cache_config.enable_prefix_caching:\n            self.b" in out
    assert "if not cache_config.enable_prefix_caching:\n            self.c" in out
    # a value with no known meaning on the pinned version stays for a human
    assert 'cache_config.mamba_cache_mode == "align"' in out


def test_hook_method_removed_with_decorator():
    out = apply_edits(SRC, Edits(remove_methods={("M", "get_mamba_state_copy_func"): "P17"}))
    assert "get_mamba_state_copy_func" not in out and "@classmethod" not in out
    assert "def forward(self, x):" in out
    ast.parse(out)


def test_class_emptied_by_hook_removal_gets_pass():
    src = "class H:\n    def hook(self):\n        return Gone.f()\n"
    out = apply_edits(src, Edits(remove_methods={("H", "hook"): "P17"}))
    ast.parse(out)
    assert "pass" in out


def test_all_edits_in_one_pass_keep_positions():
    out = apply_edits(SRC, Edits(unwrap={5: "P4"}, drop_kwargs={(14, "disable_tp"): "P6"},
                                 attr_renames={"mamba_cache_mode": "P9"},
                                 remove_methods={("M", "get_mamba_state_copy_func"): "P17"}))
    assert "with self._mark_tower_model" not in out and "disable_tp" not in out and "get_mamba" not in out
    ast.parse(out)


def test_debug_context_manager_unwrapped_everywhere():
    src = (
        "from vllm.utils.gpu_sync_debug import gpu_sync_allowed\n\n\n"
        "def f(mask):\n    with gpu_sync_allowed():\n        n = int(mask.sum())  # sync\n    return n\n\n\n"
        "def g(x):\n    with gpu_sync_allowed(first_only=True):\n        return x.item()\n"
    )
    out = apply_edits(src, Edits(unwrap_calls={"gpu_sync_allowed": "P21"}))
    assert "with gpu_sync_allowed" not in out
    assert "    n = int(mask.sum())  # sync\n    return n\n" in out and "    return x.item()\n" in out
    assert Edits(unwrap_calls={"gpu_sync_allowed": "P21"}).rules() == {"P21"}
    ast.parse(out)


def test_kwarg_rename_keeps_value_and_formatting():
    src = '@default_pooling_type(seq_pooling_type="CLS")  # sequence models\nclass A:\n    pass\n'
    out = apply_edits(src, Edits(rename_kwargs={(1, "seq_pooling_type", "pooling_type"): "P6"}))
    assert out == '@default_pooling_type(pooling_type="CLS")  # sequence models\nclass A:\n    pass\n'
    assert apply_edits(src, Edits(rename_kwargs={(2, "seq_pooling_type", "pooling_type"): "P6"})) == src
    assert Edits(rename_kwargs={(1, "a", "b"): "P6"}).rules() == {"P6"}


def test_kwarg_rename_and_drop_in_one_call():
    src = '@default_pooling_type(seq_pooling_type="CLS", tok_pooling_type="ALL")\nclass A:\n    pass\n'
    edits = Edits(rename_kwargs={(1, "seq_pooling_type", "pooling_type"): "P6"},
                  drop_kwargs={(1, "tok_pooling_type"): "P6"})
    assert apply_edits(src, edits) == '@default_pooling_type(pooling_type="CLS")\nclass A:\n    pass\n'


def test_required_keyword_added_after_the_last_argument_in_its_layout():
    multi = "x = self.embed(\n    ids,\n    fn,\n    is_multimodal=m,\n)\n"
    out = apply_edits(multi, Edits(add_kwargs={(1, "handle_oov_mm_token"): ("P7", "False")}))
    assert out == "x = self.embed(\n    ids,\n    fn,\n    is_multimodal=m,\n    handle_oov_mm_token=False,\n)\n"
    one = "x = self.embed(ids)\n"
    assert apply_edits(one, Edits(add_kwargs={(1, "k"): ("P7", "False")})) == "x = self.embed(ids, k=False)\n"
    # another line's call, and a call that already passes it, are left alone
    assert apply_edits(one, Edits(add_kwargs={(2, "k"): ("P7", "False")})) == one
    done = "x = self.embed(ids, k=True)\n"
    assert apply_edits(done, Edits(add_kwargs={(1, "k"): ("P7", "False")})) == done


def test_required_keyword_goes_to_the_findings_callee_not_a_call_starting_on_its_line():
    """clip's override called `super(handle_oov_mm_token=False)._embed_text_input_ids(...)` once migrated: the
    keyword went to every call starting on the finding's line, super() included (TypeError when run)."""
    src = "x = super()._embed_text_input_ids(\n    ids,\n    fn,\n    is_multimodal=m,\n)\n"
    edits = Edits(add_kwargs={(1, "handle_oov_mm_token"): ("P7", "False")},
                  add_kwargs_to={(1, "handle_oov_mm_token"): "_embed_text_input_ids"})
    assert apply_edits(src, edits) == ("x = super()._embed_text_input_ids(\n    ids,\n    fn,\n    is_multimodal=m,\n"
                                       "    handle_oov_mm_token=False,\n)\n")


def test_callee_re_pointed_on_its_line_only():
    src = "a = C.old(x, y, z)\nb = C.old(x, y, z)\n"
    out = apply_edits(src, Edits(rename_callees={(2, "old"): ("P7", "new")}))
    assert out == "a = C.old(x, y, z)\nb = C.new(x, y, z)\n"
