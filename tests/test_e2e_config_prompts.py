"""Config precedence and validation, the shipped template, and the prompts file with its images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.e2e.config import Settings, load_config_file, overrides_from_config, resolve_settings
from flagos_migrate.e2e.prompts import (
    check_image_bytes,
    check_png,
    decode_data_url,
    encode_png,
    image_urls,
    load_prompts,
    parse_prompts,
    png_data_url,
    select_prompts,
)

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
TEMPLATE = SCRIPTS / "e2e_config.template.json"
PROMPTS = SCRIPTS / "e2e_test_prompts.json"


def test_template_has_exactly_the_shared_schema():
    data = json.loads(TEMPLATE.read_text())
    assert set(data) == {"_comment", "model", "gt_machine", "local", "eval"}
    assert set(data["gt_machine"]) == {
        "host", "user", "port", "key_file", "known_hosts", "host_key_policy", "docker_container", "conda_env",
        "workdir", "models_dir", "serve_port", "tensor_parallel_size", "gpus", "env_vars", "extra_args"}
    assert set(data["local"]) == {"host", "port"}
    assert set(data["eval"]) == {"max_tokens", "token_match_count", "top_k", "concurrency", "mode", "api",
                                 "wait_timeout", "results_dir", "seed"}
    s = resolve_settings(load_config_file(TEMPLATE), {})
    assert s.gt_url == "http://gt-node-01:8000" and s.local_url == "http://127.0.0.1:8122"
    assert s.model == "qwen3_5"


def test_precedence_cli_over_config_over_defaults():
    config = overrides_from_config({"local": {"port": 9000},
                                    "eval": {"max_tokens": 20, "top_k": 3, "token_match_count": 10}})
    s = resolve_settings(config, {"max_tokens": 12, "top_k": None, "concurrency": None})
    assert s.max_tokens == 12  # CLI wins
    assert s.top_k == 3 and s.local_port == 9000 and s.token_match_count == 10  # config wins over defaults
    assert s.concurrency == Settings().concurrency == 8 and Settings().local_port == 8122


@pytest.mark.parametrize("data, word", [
    ({"eval": {"max_token": 5}}, "max_token"),
    ({"local": {"prot": 1}}, "prot"),
    ({"evaluation": {}}, "evaluation"),
])
def test_unknown_keys_are_rejected_with_their_name(data, word):
    with pytest.raises(UsageError) as exc:
        overrides_from_config(data)
    assert word in exc.value.message


def test_comment_keys_and_unvalidated_gt_fields_are_accepted():
    config = overrides_from_config({"_comment": "x", "gt_machine": {"host": "h", "anything": 1},
                                    "eval": {"_note": "y"}})
    assert config == {"gt_host": "h"}


@pytest.mark.parametrize("field, value", [
    ("top_k", 21), ("top_k", 0), ("max_tokens", "64"), ("mode", "video"), ("api", "responses"),
    ("local_port", 70000), ("concurrency", True), ("wait_timeout", -1),
])
def test_bad_values_are_rejected(field, value):
    with pytest.raises(UsageError):
        resolve_settings({}, {field: value})


def test_token_match_count_above_max_tokens_can_never_pass():
    with pytest.raises(UsageError) as exc:
        resolve_settings({}, {"max_tokens": 8, "token_match_count": 16})
    assert "could ever pass" in exc.value.hint


def test_config_file_errors_are_usage_errors(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("{nope")
    with pytest.raises(UsageError, match="not valid JSON"):
        load_config_file(bad)
    with pytest.raises(UsageError, match="not found"):
        load_config_file(tmp_path / "missing.json")


def test_shipped_prompts_are_five_text_and_five_multimodal():
    prompts = load_prompts(PROMPTS)
    assert [p.modality for p in prompts].count("text") == 5
    assert [p.modality for p in prompts].count("multimodal") == 5
    assert len({p.id for p in prompts}) == 10 and all(p.category for p in prompts)
    cats = {p.category for p in prompts if p.modality == "text"}
    assert cats == {"factual", "chinese", "code", "math_reasoning", "long_form"}
    chinese = next(p for p in prompts if p.category == "chinese")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese.completion_text())


def test_every_embedded_image_decodes_as_a_valid_png():
    prompts = load_prompts(PROMPTS)
    urls = [u for p in prompts for u in image_urls(p.messages)]
    assert len(urls) >= 5
    for url in urls:
        media, data = decode_data_url(url)
        assert media == "image/png"
        width, height = check_png(data)
        assert (width, height) == (64, 64)
        assert len(data) < 4096  # small, as the prompts file should stay readable


def test_png_encoder_round_trip_and_corruption_is_detected():
    png = encode_png(5, 3, lambda x, y: (x * 50, y * 80, 7))
    assert check_png(png) == (5, 3) and check_image_bytes(png) == "png"
    corrupt = bytearray(png)
    corrupt[40] ^= 0xFF  # inside IDAT: the CRC no longer matches
    with pytest.raises(ValueError):
        check_png(bytes(corrupt))
    with pytest.raises(ValueError):
        check_image_bytes(b"GIF89a....")


def test_invalid_prompts_are_rejected():
    good = {"id": "a", "category": "c", "modality": "text", "messages": [{"role": "user", "content": "hi"}]}
    assert parse_prompts({"prompts": [good]})[0].completion_text() == "hi"
    with pytest.raises(UsageError, match="duplicate"):
        parse_prompts({"prompts": [good, good]})
    broken_png = png_data_url(encode_png(2, 2, lambda x, y: (0, 0, 0)))[:-8] + "AAAAAAA="
    mm = {**good, "id": "b", "modality": "multimodal", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": broken_png}}, {"type": "text", "text": "?"}]}]}
    with pytest.raises(UsageError, match="image is invalid"):
        parse_prompts({"prompts": [mm]})
    with pytest.raises(UsageError, match="needs at least one image"):
        parse_prompts({"prompts": [{**good, "modality": "multimodal"}]})


def test_mode_and_api_select_prompts():
    prompts = load_prompts(PROMPTS)
    text, _ = select_prompts(prompts, "text", "chat")
    mm, _ = select_prompts(prompts, "multimodal", "chat")
    assert len(text) == 5 and len(mm) == 5
    comp, notes = select_prompts(prompts, "all", "completions")
    assert len(comp) == 5 and "carries no images" in notes[0]


def test_shipped_prompts_file_is_what_the_generator_builds():
    # the images are generated; regenerate the file rather than editing the base64 by hand
    from flagos_migrate.e2e.prompts import build_default_prompts

    assert json.loads(PROMPTS.read_text(encoding="utf-8")) == build_default_prompts()
