"""The per-prompt verdict follows vLLM's check_logprobs_close rule, and short outputs never pass."""

from __future__ import annotations

from flagos_migrate.e2e.compare import compare_outputs, compare_records, summarise


def out(ids, tops=None, kind="id"):
    """A normalised output: each position's top-k defaults to the chosen token then two others."""
    tops = tops or {}
    return {
        "token_ids": list(ids),
        "key_kind": kind,
        "keys": list(ids),
        "logprobs": [-0.1] * len(ids),
        "top": [[[k, -0.1 - 0.5 * j] for j, k in enumerate(tops.get(i, [t, t + 1000, t + 2000]))]
                for i, t in enumerate(ids)],
    }


BASE = list(range(100, 140))


def with_token(ids, pos, token):
    return ids[:pos] + [token] + ids[pos + 1:]


def test_identical_ids_match():
    r = compare_outputs(out(BASE), out(BASE), token_match_count=32, top_k=5)
    assert r["verdict"] == "match" and r["passed"] and r["compared"] == 32 and r["position"] is None


def test_close_when_each_token_is_in_the_others_top_k():
    gt = out(BASE, {10: [110, 999]})
    local = out(with_token(BASE, 10, 999), {10: [999, 110]})
    r = compare_outputs(gt, local, 32, 5)
    assert r["verdict"] == "close" and r["passed"]
    assert r["position"] == 10 and r["gt"]["token_id"] == 110 and r["local"]["token_id"] == 999
    assert r["gt_logprob_of_local_token"] == -0.6 and r["local_logprob_of_gt_token"] == -0.6
    assert "numerical noise" in r["diagnosis"]


def test_one_sided_membership_is_a_mismatch():
    gt = out(BASE, {10: [110, 999]})  # local's token is in GT's top-k ...
    local = out(with_token(BASE, 10, 999), {10: [999, 555]})  # ... but GT's is not in local's
    r = compare_outputs(gt, local, 32, 5)
    assert r["verdict"] == "mismatch" and not r["passed"]
    assert r["local_in_gt_top_k"] and not r["gt_in_local_top_k"]


def test_top_k_limits_the_candidates_considered():
    gt = out(BASE, {10: [110, 1, 2, 999]})
    local = out(with_token(BASE, 10, 999), {10: [999, 110]})
    assert compare_outputs(gt, local, 32, 4)["verdict"] == "close"
    assert compare_outputs(gt, local, 32, 3)["verdict"] == "mismatch"


def test_nothing_after_the_first_divergence_is_compared():
    gt = out(BASE, {10: [110, 999]})
    garbage = with_token(BASE, 10, 999)[:11] + [7] * 29  # everything after position 10 differs
    local = out(garbage, {10: [999, 110]})
    r = compare_outputs(gt, local, 32, 5)
    assert r["verdict"] == "close" and r["compared"] == 11


def test_divergence_beyond_token_match_count_is_not_looked_at():
    local = out(with_token(BASE, 35, 4242))
    assert compare_outputs(out(BASE), local, 32, 5)["verdict"] == "match"


def test_early_divergence_is_named_a_likely_code_bug():
    gt = out(BASE, {2: [102, 999]})
    local = out(with_token(BASE, 2, 999), {2: [999, 102]})
    r = compare_outputs(gt, local, 32, 5)
    assert r["verdict"] == "close" and "likely a code bug" in r["diagnosis"]
    m = compare_outputs(out(BASE), out(with_token(BASE, 0, 5)), 32, 5)
    assert m["verdict"] == "mismatch" and "likely a code bug" in m["diagnosis"]
    assert summarise({"a": r, "b": m})["early_divergence"] == ["a", "b"]


def test_empty_output_never_passes():
    for gt, local in ((out([]), out(BASE)), (out(BASE), out([])), (out([]), out([]))):
        r = compare_outputs(gt, local, 32, 5)
        assert r["verdict"] == "empty" and not r["passed"]


def test_too_short_output_never_passes_even_when_identical():
    r = compare_outputs(out(BASE[:5]), out(BASE[:5]), 32, 5)
    assert r["verdict"] == "too_short" and not r["passed"] and r["compared"] == 5
    r = compare_outputs(out(BASE), out(BASE[:20]), 32, 5)
    assert r["verdict"] == "too_short" and "local stopped" in r["detail"]


def test_text_keys_work_when_ids_are_not_available_for_candidates():
    gt = out(BASE, {3: [103, 7]})
    local = out(with_token(BASE, 3, 7), {3: [7, 103]})
    for o in (gt, local):
        o["key_kind"] = "text"
        o["keys"] = [f"w{t}" for t in o["token_ids"]]
        o["top"] = [[[f"w{k}", lp] for k, lp in row] for row in o["top"]]
    assert compare_outputs(gt, local, 32, 5)["verdict"] == "close"
    local["key_kind"] = "id"
    assert compare_outputs(gt, local, 32, 5)["verdict"] == "error"


def test_records_with_errors_missing_or_different_params():
    ok = {"status": "ok", "output": out(BASE), "params": {"max_tokens": 64}}
    assert compare_records(None, ok, 32, 5)["verdict"] == "missing"
    failed = {"status": "error", "error": "HTTP 500: boom", "output": None, "params": {"max_tokens": 64}}
    r = compare_records(ok, failed, 32, 5)
    assert r["verdict"] == "error" and "HTTP 500" in r["detail"] and not r["passed"]
    other = {**ok, "params": {"max_tokens": 32}}
    assert "different parameters" in compare_records(ok, other, 32, 5)["detail"]
    assert compare_records(ok, dict(ok), 32, 5)["verdict"] == "match"
