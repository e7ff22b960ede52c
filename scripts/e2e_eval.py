#!/usr/bin/env python3
"""Compare the plugin's vLLM server (local) with an upstream vLLM server (GT), token by token.

Both servers are asked the same prompts greedily (temperature 0, fixed seed) with logprobs,
top-k candidates and token ids; prompts run concurrently and the GT and local phases overlap.
A prompt passes when the token ids are identical for --token-match-count tokens ("match"), or
when at the first differing position each side's token is among the other's top-k ("close",
the rule of vLLM's check_logprobs_close). Results are saved after every prompt in
--results-dir (gt.json, local.json), so an interrupted run resumes without re-asking; reports
are written there too (report.json, report.md, report.html).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from flagos_migrate.cli import (
    EXIT_FINDINGS,
    EXIT_OK,
    UsageError,
    make_parser,
    print_json,
    progress,
    run_main,
    seconds,
)
from flagos_migrate.e2e.client import (
    SIDES,
    ResultStore,
    collect,
    decode_tokens,
    load_token_text,
    read_results,
    results_path,
)
from flagos_migrate.e2e.compare import compare_records, summarise
from flagos_migrate.e2e.config import (
    APIS,
    MODES,
    find_default_config,
    load_config_file,
    resolve_settings,
)
from flagos_migrate.e2e.prompts import image_urls, load_prompts, select_prompts
from flagos_migrate.e2e.report import build_report, console_table, write_reports

EPILOG = """\
precedence: command-line flags > config file (--config, or ./e2e_config.json) > defaults.
phases: by default both servers are asked and compared; --gt-only / --local-only only ask
one server (results are kept for later); --compare-only asks nothing and compares the saved
results.
examples:
  python3 scripts/e2e_eval.py --config e2e_config.json
  python3 scripts/e2e_eval.py --gt-host gt-node-01 --gt-port 8000 --local-port 8122 --mode text
  python3 scripts/e2e_eval.py --compare-only --results-dir e2e_results --format json

verdict exit codes: 0 every prompt matched or was close; 1 a mismatch, too-short or empty
output, or a prompt that failed; 2 could not run (bad config, server unreachable, nothing to
compare)."""


def build_parser():
    p = make_parser("e2e_eval.py", __doc__.strip().splitlines()[0], EPILOG)
    p.add_argument("--config", help="JSON config file (see scripts/e2e_config.template.json)")
    p.add_argument("--model", help="model to compare; picks among several served models (id or path)")
    p.add_argument("--prompts", help="prompts JSON file (default: scripts/e2e_test_prompts.json)")
    p.add_argument("--gt-host", help="host of the upstream (GT) vLLM server (config: gt_machine.host)")
    p.add_argument("--gt-port", type=int, help="port of the GT server (default 8000)")
    p.add_argument("--local-host", help="host of the plugin's vLLM server (default 127.0.0.1)")
    p.add_argument("--local-port", type=int, help="port of the plugin's vLLM server (default 8122)")
    p.add_argument("--max-tokens", type=int, help="tokens generated per prompt (default 64)")
    p.add_argument("--token-match-count", type=int, help="identical tokens needed for a match (default 32)")
    p.add_argument("--top-k", type=int, help="top-k candidates for the 'close' rule, 1-20 (default 5)")
    p.add_argument("--concurrency", type=int, help="requests in flight per server (default 8)")
    p.add_argument("--mode", choices=MODES, help="which prompts: text, multimodal or all (default all)")
    p.add_argument("--api", choices=APIS, help="chat (default) or completions")
    p.add_argument("--wait-timeout", type=seconds(0), help="seconds to wait for a server's /health (default 600)")
    p.add_argument("--request-timeout", type=seconds(0.001),
                   help="seconds for a whole request, answer included (default 300)")
    p.add_argument("--retries", type=int, help="retries on refused connections and HTTP 5xx (default 2)")
    p.add_argument("--seed", type=int, help="sampling seed sent with every request (default 0)")
    p.add_argument("--results-dir", help="where results and reports go (default e2e_results)")
    phase = p.add_mutually_exclusive_group()
    phase.add_argument("--gt-only", action="store_true", help="only ask the GT server")
    phase.add_argument("--local-only", action="store_true", help="only ask the local server")
    phase.add_argument("--compare-only", action="store_true", help="ask nothing; compare saved results")
    p.add_argument("--format", choices=("text", "json"), default="text", help="stdout format (default text)")
    p.add_argument("--dry-run", action="store_true", help="show what would be asked; no requests, no writes")
    return p


CLI_FIELDS = ("model", "prompts", "gt_host", "gt_port", "local_host", "local_port", "max_tokens",
              "token_match_count", "top_k", "concurrency", "mode", "api", "wait_timeout", "request_timeout",
              "retries", "seed", "results_dir")


def _phase(args) -> str:
    return "gt" if args.gt_only else "local" if args.local_only else "compare" if args.compare_only else "both"


def _sides(phase: str, settings) -> dict[str, str]:
    wanted = {"both": SIDES, "gt": ("gt",), "local": ("local",), "compare": ()}[phase]
    sides = {}
    for side in wanted:
        if side == "gt":
            if not settings.gt_url:
                raise UsageError("no GT server given", "pass --gt-host (and --gt-port), or set gt_machine.host "
                                 "and gt_machine.serve_port in --config")
            sides["gt"] = settings.gt_url
        else:
            sides["local"] = settings.local_url
    return sides


def _dry_run(args, settings, phase, sides, prompts, notes) -> int:
    plan = {"phase": phase, "servers": sides, "settings": settings.to_dict(), "notes": notes, "prompts": []}
    stored = {side: read_results(results_path(settings.results_dir, side)) for side in SIDES}
    for p in prompts:
        plan["prompts"].append({"id": p.id, "category": p.category, "modality": p.modality,
                                **{f"{side}_saved": (stored[side].get(p.id) or {}).get("status") for side in SIDES}})
    if args.format == "json":
        print_json(plan)
    else:
        print(f"phase: {phase}; servers: {', '.join(f'{k}={v}' for k, v in sides.items()) or 'none'}")
        for note in notes:
            print(f"note: {note}")
        for row in plan["prompts"]:
            print(f"  {row['id']:<16} {row['modality']:<10} saved gt={row['gt_saved']} local={row['local_saved']}")
        print("(dry run: nothing asked, nothing written)")
    return EXIT_OK


def _collect_only_output(args, phase, outcomes, settings, notes) -> int:
    out = outcomes[phase]
    info = {"phase": phase, "server": out.url, "model": out.model, "asked": sorted(out.asked),
            "resumed": sorted(out.resumed), "errors": out.errors, "elapsed_s": out.elapsed_s,
            "results": str(results_path(settings.results_dir, phase))}
    code = EXIT_FINDINGS if out.errors else EXIT_OK
    if args.format == "json":
        print_json({**info, "notes": notes, "exit_code": code})
    else:
        for note in notes:
            print(f"note: {note}")
        print(f"{phase}: asked {len(out.asked)}, already answered {len(out.resumed)}, "
              f"errors {len(out.errors)} in {out.elapsed_s:.2f}s -> {info['results']}")
        for pid, err in sorted(out.errors.items()):
            print(f"  {pid}: {err}")
    return code


DECODE_WINDOW = 12


def _display_ids(outputs, verdicts) -> set[int]:
    """Token ids whose text the reports show: up to a little past each divergence, and its top-k.

    Only diverging prompts: /detokenize costs one request per id, and a matching prompt needs none.
    """
    ids: set[int] = set()
    for pid, sides in outputs.items():
        position = verdicts[pid].get("position")
        if position is None:
            continue
        for out in sides.values():
            if not out or out.get("key_kind") != "id":
                continue
            ids.update(out["token_ids"][:position + DECODE_WINDOW + 1])
            if position < len(out.get("top") or []):
                ids.update(key for key, _ in out["top"][position])
    return ids


def _token_text(outcomes, servers, outputs, verdicts, settings) -> dict[str, str]:
    """Texts of token ids for the reports: from a live server's /detokenize, else from the cache."""
    ids = _display_ids(outputs, verdicts)
    live = [o for o in (outcomes.get("gt"), outcomes.get("local")) if o and o.reachable and o.model]
    if live and ids:
        return decode_tokens(live[0].url, live[0].model, ids, settings, progress)
    cache = load_token_text(settings.results_dir)
    for side in SIDES:
        model = servers[side].get("model")
        if model and cache.get(model):
            return cache[model]
    return {}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config_path = args.config or find_default_config(Path.cwd())
    config = {}
    if config_path:
        if not args.config:
            progress(f"using config {config_path}")
        config = load_config_file(config_path)
    settings = resolve_settings(config, {name: getattr(args, name) for name in CLI_FIELDS})
    prompts, notes = select_prompts(load_prompts(settings.prompts), settings.mode, settings.api)
    if not prompts:
        raise UsageError(f"no prompts left for --mode {settings.mode} --api {settings.api}", "; ".join(notes) or None)
    phase = _phase(args)
    sides = _sides(phase, settings)
    if args.dry_run:
        return _dry_run(args, settings, phase, sides, prompts, notes)

    outcomes = {}
    if sides:
        progress(f"asking {len(prompts)} prompt(s) at {', '.join(f'{k}={v}' for k, v in sides.items())}")
        outcomes = collect(sides, prompts, settings, progress)
        down = [o for o in outcomes.values() if not o.reachable]
        if down:
            raise UsageError("; ".join(o.problem for o in down),
                             "start the server (scripts/serve.sh, e2e_remote_serve.sh start) or raise --wait-timeout")
        for o in outcomes.values():
            if o.note:
                notes.append(o.note)
    if phase in ("gt", "local"):
        return _collect_only_output(args, phase, outcomes, settings, notes)

    stores = {side: ResultStore.open(settings.results_dir, side) for side in SIDES}
    verdicts, outputs = {}, {}
    for p in prompts:
        gt_rec, local_rec = stores["gt"].results.get(p.id), stores["local"].results.get(p.id)
        verdicts[p.id] = compare_records(gt_rec, local_rec, settings.token_match_count, settings.top_k)
        outputs[p.id] = {side: (rec or {}).get("output") for side, rec in (("gt", gt_rec), ("local", local_rec))}
    if all(v["verdict"] == "missing" for v in verdicts.values()):
        raise UsageError(f"no results to compare in {settings.results_dir}",
                         "run without --compare-only (or with --gt-only and --local-only) first")
    asked_k = [rec["params"].get("top_logprobs", rec["params"].get("logprobs"))
               for store in stores.values() for rec in store.results.values()
               if isinstance(rec, dict) and isinstance(rec.get("params"), dict) and rec.get("prompt_id") in verdicts]
    fewer = [k for k in asked_k if isinstance(k, int) and not isinstance(k, bool) and k < settings.top_k]
    if fewer:
        notes.append(f"saved answers carry only top-{min(fewer)} candidates; the close rule used those, "
                     f"not top-{settings.top_k}")
    summary = summarise(verdicts)
    servers = {}
    for side in SIDES:
        o = outcomes.get(side)
        recs = [stores[side].results.get(p.id) or {} for p in prompts]
        model = o.model if o else next((r.get("model") for r in recs if r.get("model")), None)
        url = o.url if o else next((r.get("server") for r in recs if r.get("server")), None)
        servers[side] = {"url": url, "model": model, "elapsed_s": o.elapsed_s if o else None}
    token_text = _token_text(outcomes, servers, outputs, verdicts, settings)
    meta = [{"id": p.id, "category": p.category, "modality": p.modality, "prompt_text": p.completion_text(),
             "images": image_urls(p.messages)} for p in prompts]
    report = build_report(settings.to_dict(), meta, verdicts, summary, servers, outputs, notes, token_text)
    paths = write_reports(report, settings.results_dir)
    code = EXIT_OK if summary["failed"] == 0 else EXIT_FINDINGS
    if args.format == "json":
        slim = [{k: v for k, v in row.items() if k != "outputs"} for row in report["prompts"]]
        print_json({"exit_code": code, "summary": summary, "servers": servers, "notes": notes,
                    "reports": paths, "prompts": slim})
    else:
        for note in notes:
            print(f"note: {note}")
        print(console_table(report))
        if summary["early_divergence"]:
            print(f"early divergence (likely code bug): {', '.join(summary['early_divergence'])}")
        print("reports: " + ", ".join(paths.values()))
    return code


if __name__ == "__main__":
    run_main(main)
