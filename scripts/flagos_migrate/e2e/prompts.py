"""Prompts of the end-to-end comparison: loading, checking, and the small images they embed.

A prompts file is ``{"prompts": [{"id", "category", "modality", "messages", ["prompt"]}, ...]}``.
``messages`` is an OpenAI chat message list; multimodal prompts carry images as ``data:`` URLs.
``prompt`` (optional) is the raw text sent when ``--api completions`` is used; without it the
text parts of the messages are joined.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from flagos_migrate.cli import UsageError

MODALITIES = ("text", "multimodal")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Prompt:
    id: str
    category: str
    modality: str
    messages: list[dict[str, Any]]
    prompt: str | None = None

    def completion_text(self) -> str:
        return self.prompt if self.prompt is not None else "\n".join(text_parts(self.messages))


def text_parts(messages: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return out


def image_urls(messages: list[dict[str, Any]]) -> list[str]:
    urls: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    urls.append(str((part.get("image_url") or {}).get("url", "")))
    return urls


# ---------------------------------------------------------------- images


def encode_png(width: int, height: int, pixel: Callable[[int, int], tuple[int, int, int]]) -> bytes:
    """An 8-bit RGB PNG; ``pixel(x, y)`` gives the colour of each pixel."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type 0 (none) for every scanline
        for x in range(width):
            rows.extend(bytes(pixel(x, y)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return PNG_MAGIC + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


def png_data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def decode_data_url(url: str) -> tuple[str, bytes]:
    """(media type, bytes) of a base64 ``data:`` URL; raises ValueError when it is not one."""
    if not url.startswith("data:") or ";base64," not in url:
        raise ValueError("not a base64 data: URL")
    head, payload = url[5:].split(";base64,", 1)
    try:
        return head, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"bad base64: {exc}") from None


def check_png(data: bytes) -> tuple[int, int]:
    """Fully decode the PNG structure (chunks, CRCs, image data size); returns (width, height)."""
    if not data.startswith(PNG_MAGIC):
        raise ValueError("no PNG signature")
    pos, idat, size, seen_end = len(PNG_MAGIC), b"", None, False
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated chunk header")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc_bytes = data[pos + 8 + length:pos + 12 + length]
        if len(body) != length or len(crc_bytes) != 4:
            raise ValueError(f"truncated {kind!r} chunk")
        if struct.unpack(">I", crc_bytes)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ValueError(f"bad CRC in {kind!r} chunk")
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in (0, 2, 6) or interlace != 0:
                raise ValueError("only 8-bit grey/RGB/RGBA non-interlaced PNGs are checked")
            size = (width, height, {0: 1, 2: 3, 6: 4}[colour])
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            seen_end = True
            break
        pos += 12 + length
    if size is None or not seen_end:
        raise ValueError("missing IHDR or IEND")
    width, height, channels = size
    raw = zlib.decompress(idat)
    if len(raw) != height * (1 + width * channels):
        raise ValueError("image data size does not match the header")
    return width, height


def check_image_bytes(data: bytes) -> str:
    if data.startswith(PNG_MAGIC):
        check_png(data)
        return "png"
    if data.startswith(JPEG_MAGIC) and data.endswith(b"\xff\xd9"):
        return "jpeg"
    raise ValueError("neither a PNG nor a JPEG image")


# Scenes for the default multimodal prompts: 64x64 pictures with one clear answer each.
def _circle(colour, background=(255, 255, 255), cx=32, cy=32, r=20):
    return lambda x, y: colour if (x - cx) ** 2 + (y - cy) ** 2 <= r * r else background


def _square_and_circle(x: int, y: int) -> tuple[int, int, int]:
    if 6 <= x < 28 and 20 <= y < 42:
        return (30, 60, 220)  # blue square on the left
    if (x - 46) ** 2 + (y - 31) ** 2 <= 100:
        return (230, 200, 20)  # yellow circle on the right
    return (255, 255, 255)


def _three_dots(x: int, y: int) -> tuple[int, int, int]:
    for cx in (14, 32, 50):
        if (x - cx) ** 2 + (y - 32) ** 2 <= 36:
            return (0, 0, 0)
    return (255, 255, 255)


def _stripes(x: int, y: int) -> tuple[int, int, int]:
    return (220, 30, 30) if (x // 8) % 2 == 0 else (255, 255, 255)


def _triangle(x: int, y: int) -> tuple[int, int, int]:
    # an upward-pointing green triangle: apex (32, 8), base from (8, 56) to (56, 56)
    inside = 8 <= y <= 56 and abs(x - 32) <= (y - 8) / 2
    return (20, 170, 60) if inside else (240, 240, 240)


def _gradient(x: int, y: int) -> tuple[int, int, int]:
    level = int(255 * (1 - math.hypot(x - 32, y - 32) / 46))
    return (max(level, 0), max(level, 0), 255)


SCENES = {
    "red_circle": _circle((220, 30, 30)),
    "square_and_circle": _square_and_circle,
    "three_dots": _three_dots,
    "stripes": _stripes,
    "triangle": _triangle,
    "gradient": _gradient,
}


def scene_data_url(name: str, size: int = 64) -> str:
    return png_data_url(encode_png(size, size, SCENES[name]))


# ---------------------------------------------------------------- loading


def _bad(where: str, message: str) -> UsageError:
    return UsageError(f"prompts file: {where}: {message}", "see scripts/e2e_test_prompts.json for the format")


def parse_prompts(data: Any) -> list[Prompt]:
    items = data.get("prompts") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise _bad("top level", "expected {\"prompts\": [...]} with at least one prompt")
    seen: set[str] = set()
    out: list[Prompt] = []
    for index, item in enumerate(items):
        where = f"prompt #{index}"
        if not isinstance(item, dict):
            raise _bad(where, "must be an object")
        pid = item.get("id")
        if not isinstance(pid, str) or not pid:
            raise _bad(where, "needs a non-empty string 'id'")
        where = f"prompt {pid!r}"
        if pid in seen:
            raise _bad(where, "duplicate id")
        seen.add(pid)
        modality = item.get("modality")
        if modality not in MODALITIES:
            raise _bad(where, f"'modality' must be one of {', '.join(MODALITIES)}")
        if not isinstance(item.get("category"), str) or not item["category"]:
            raise _bad(where, "needs a non-empty string 'category'")
        messages = item.get("messages")
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise _bad(where, "'messages' must be a non-empty list of chat messages")
        urls = image_urls(messages)
        if modality == "multimodal" and not urls:
            raise _bad(where, "a multimodal prompt needs at least one image_url part")
        for url in urls:
            if url.startswith("data:"):
                try:
                    check_image_bytes(decode_data_url(url)[1])
                except ValueError as exc:
                    raise _bad(where, f"embedded image is invalid: {exc}") from None
        raw_prompt = item.get("prompt")
        if raw_prompt is not None and not isinstance(raw_prompt, str):
            raise _bad(where, "'prompt' must be a string")
        out.append(Prompt(pid, item["category"], modality, messages, raw_prompt))
    return out


def load_prompts(path: str | Path) -> list[Prompt]:
    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"prompts file not found: {p}", "pass --prompts PATH") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"prompts file {p} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"prompts file {p} is not UTF-8 text: {exc.reason}") from None
    except OSError as exc:
        raise UsageError(f"cannot read prompts file {p}: {exc.strerror or exc}", "pass a JSON file") from None
    return parse_prompts(data)


def select_prompts(prompts: list[Prompt], mode: str, api: str) -> tuple[list[Prompt], list[str]]:
    """Prompts for ``mode``; multimodal prompts are left out under the completions API (no images there)."""
    notes: list[str] = []
    chosen = [p for p in prompts if mode == "all" or p.modality == mode]
    if api == "completions":
        skipped = [p.id for p in chosen if p.modality == "multimodal"]
        if skipped:
            notes.append(f"--api completions carries no images; skipped: {', '.join(skipped)}")
        chosen = [p for p in chosen if p.modality != "multimodal"]
    return chosen, notes


def build_default_prompts() -> dict[str, Any]:
    """The content of scripts/e2e_test_prompts.json (kept here so the images can be regenerated)."""

    def user(text: str, *scenes: str) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": scene_data_url(s)}} for s in scenes]
        parts.append({"type": "text", "text": text})
        return [{"role": "user", "content": parts if scenes else text}]

    # Every prompt asks for a long answer: an output shorter than token_match_count never passes.
    text = [
        ("text_factual", "factual",
         "Describe the city of Paris: where it lies, the river that crosses it, three famous landmarks "
         "and a short history. Write at least 150 words."),
        ("text_chinese", "chinese", "请详细介绍长城的历史、修建目的和现状，至少写两百字。"),
        ("text_code", "code",
         "Write a Python function `is_prime(n: int) -> bool` with a docstring, then explain step by step "
         "how it works and show three example calls with their results."),
        ("text_math", "math_reasoning",
         "A train travels 120 km in 1.5 hours, then 80 km in 1 hour. What is its average speed for the "
         "whole trip? Reason step by step, showing every calculation, before giving the final answer."),
        ("text_longform", "long_form",
         "Write an essay of about 300 words on why reproducible experiments matter in machine learning."),
    ]
    multimodal = [
        ("mm_color", "color",
         "Describe this image in detail: the shape, its colour, its size and position, and the background. "
         "Write at least 80 words.", ("red_circle",)),
        ("mm_shapes", "shapes_layout",
         "Describe every shape in this image: its kind, its colour and where it is relative to the others. "
         "Then summarise the layout. Write at least 80 words.", ("square_and_circle",)),
        ("mm_counting", "counting",
         "How many black dots are in this image? Explain how you counted them and describe their "
         "arrangement in detail.", ("three_dots",)),
        ("mm_pattern", "pattern",
         "Describe the pattern in this image in detail: its colours, the direction and width of the "
         "stripes, and what it could be used for.", ("stripes",)),
        ("mm_two_images", "multi_image",
         "Here are two images. Describe each one in detail, then say which one shows a triangle and "
         "explain how you can tell.", ("gradient", "triangle")),
    ]
    prompts = [
        {"id": pid, "category": cat, "modality": "text", "messages": user(msg), "prompt": msg}
        for pid, cat, msg in text
    ] + [
        {"id": pid, "category": cat, "modality": "multimodal", "messages": user(msg, *scenes)}
        for pid, cat, msg, scenes in multimodal
    ]
    return {
        "_comment": (
            "Prompts of scripts/e2e_eval.py: 5 text + 5 multimodal. Each has id, category, modality "
            "(text|multimodal) and OpenAI chat 'messages'; 'prompt' is the raw text used with "
            "--api completions. Images are 64x64 PNG data URLs generated by "
            "flagos_migrate.e2e.prompts.build_default_prompts()."
        ),
        "prompts": prompts,
    }
