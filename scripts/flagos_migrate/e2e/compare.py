"""Verdict per prompt, by the rule vLLM's own tests use to compare two implementations.

``check_logprobs_close`` in vLLM's tests: walk both greedy outputs; identical token ids pass;
at the first position where they differ, the outputs are still "close" when each side's token
is among the other side's top-k candidates at that step; nothing after the first divergence
is compared (the contexts differ from there on). Here, in addition, an empty output or one
shorter than ``token_match_count`` never passes: "0 of 0 tokens matched" proves nothing.
"""

from __future__ import annotations

from typing import Any

PASSING = ("match", "close")
VERDICTS = ("match", "close", "mismatch", "too_short", "empty", "error", "missing")
#: Divergence this early is most likely a code bug rather than numerical noise.
EARLY_POSITIONS = 5


def _top_keys(output: dict[str, Any], position: int, k: int) -> list[Any]:
    rows = output.get("top") or []
    return [key for key, _ in rows[position][:k]] if position < len(rows) else []


def _logprob_of(output: dict[str, Any], position: int, key: Any) -> float | None:
    rows = output.get("top") or []
    if position < len(rows):
        for cand, lp in rows[position]:
            if cand == key:
                return lp
    return None


def _side_at(output: dict[str, Any], position: int, k: int) -> dict[str, Any]:
    lps = output.get("logprobs") or []
    return {
        "token_id": output["token_ids"][position],
        "logprob": lps[position] if position < len(lps) else None,
        "top": [list(pair) for pair in (output.get("top") or [[]] * (position + 1))[position][:k]],
    }


def diagnose(verdict: str, position: int | None) -> str:
    if verdict == "match":
        return "identical token ids"
    if verdict in ("close", "mismatch") and position is not None and position < EARLY_POSITIONS:
        return (f"early divergence at position {position} (first {EARLY_POSITIONS} tokens): likely a code bug "
                "- check load_weights, stacked_params_mapping, tensor-parallel sharding")
    if verdict == "close":
        return (f"late divergence at position {position} between near-tied tokens: numerical noise from "
                "different op implementations (usually acceptable; note it in the report)")
    if verdict == "mismatch":
        return (f"divergence at position {position} where neither token is a top-k candidate of the other: "
                "a real numerical or code difference; investigate the ops used from that point on")
    if verdict == "too_short":
        return ("output shorter than token_match_count: not enough evidence (if the model stopped by itself, "
                "use a prompt asking for a longer answer or lower --token-match-count)")
    if verdict == "empty":
        return "empty output: nothing to compare"
    return ""


def compare_outputs(gt: dict[str, Any], local: dict[str, Any], token_match_count: int, top_k: int) -> dict[str, Any]:
    """Compare two normalised outputs (see e2e_client.parse_chat); returns the verdict record."""
    g, lo = gt["token_ids"], local["token_ids"]
    result: dict[str, Any] = {"gt_tokens": len(g), "local_tokens": len(lo), "required": token_match_count,
                              "position": None, "gt": None, "local": None}
    if not g or not lo:
        side = "GT" if not g else "local"
        result.update(verdict="empty", compared=0, detail=f"{side} output is empty")
    elif gt.get("key_kind", "id") != local.get("key_kind", "id"):
        result.update(verdict="error", compared=0,
                      detail="the two servers report top-k candidates differently (token ids vs strings)")
    else:
        limit = min(token_match_count, len(g), len(lo))
        first = next((i for i in range(limit) if g[i] != lo[i]), None)
        if first is None:
            if limit < token_match_count:
                short, out = ("GT", gt) if len(g) < token_match_count else ("local", local)
                reason = out.get("finish_reason") or "unknown"
                result.update(verdict="too_short", compared=limit,
                              detail=(f"{limit} identical tokens, but {short} stopped before {token_match_count} "
                                      f"(finish_reason {reason})"))
            else:
                result.update(verdict="match", compared=limit, detail=f"{limit}/{limit} token ids identical")
        else:
            gt_key, local_key = gt["keys"][first], local["keys"][first]
            local_in_gt = local_key in _top_keys(gt, first, top_k)
            gt_in_local = gt_key in _top_keys(local, first, top_k)
            verdict = "close" if (local_in_gt and gt_in_local) else "mismatch"
            result.update(
                verdict=verdict, compared=first + 1, position=first,
                gt=_side_at(gt, first, top_k), local=_side_at(local, first, top_k),
                local_in_gt_top_k=local_in_gt, gt_in_local_top_k=gt_in_local,
                gt_logprob_of_local_token=_logprob_of(gt, first, local_key),
                local_logprob_of_gt_token=_logprob_of(local, first, gt_key),
                detail=(f"first difference at position {first}: GT {g[first]} vs local {lo[first]}; "
                        f"local token {'in' if local_in_gt else 'NOT in'} GT top-{top_k}, "
                        f"GT token {'in' if gt_in_local else 'NOT in'} local top-{top_k}"),
            )
    result["diagnosis"] = diagnose(result["verdict"], result["position"])
    result["passed"] = result["verdict"] in PASSING
    return result


def compare_records(gt_rec: dict[str, Any] | None, local_rec: dict[str, Any] | None,
                    token_match_count: int, top_k: int) -> dict[str, Any]:
    """Verdict for one prompt from the two stored records (either may be missing or an error)."""
    base: dict[str, Any] = {"position": None, "gt": None, "local": None, "compared": 0, "passed": False}
    for name, rec in (("GT", gt_rec), ("local", local_rec)):
        if rec is None:
            return {**base, "verdict": "missing", "detail": f"no {name} answer recorded", "diagnosis": ""}
    for name, rec in (("GT", gt_rec), ("local", local_rec)):
        if rec.get("status") != "ok" or not isinstance(rec.get("output"), dict):
            return {**base, "verdict": "error", "detail": f"{name} request failed: {rec.get('error')}", "diagnosis": ""}
    if gt_rec.get("params") != local_rec.get("params"):
        return {**base, "verdict": "error", "diagnosis": "",
                "detail": "GT and local were asked with different parameters; re-run without --compare-only"}
    return compare_outputs(gt_rec["output"], local_rec["output"], token_match_count, top_k)


def summarise(verdicts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    counts = {v: 0 for v in VERDICTS}
    for rec in verdicts.values():
        counts[rec["verdict"]] = counts.get(rec["verdict"], 0) + 1
    passed = sum(1 for r in verdicts.values() if r["passed"])
    early = sorted(pid for pid, r in verdicts.items()
                   if r.get("position") is not None and r["position"] < EARLY_POSITIONS)
    return {"total": len(verdicts), "passed": passed, "failed": len(verdicts) - passed, "counts": counts,
            "early_divergence": early}
