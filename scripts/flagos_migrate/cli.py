"""Conventions shared by every command-line script of the bundle.

Exit codes (documented in README.md and every ``--help``):
  0  success / nothing found
  1  the command ran and found problems (findings, mismatches)
  2  the command could not run (bad arguments, missing paths, unreachable servers)
130  interrupted
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Callable, NoReturn, Sequence

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = (
    "exit codes: 0 success, 1 problems found, 2 could not run "
    "(bad input; the message says what to fix), 130 interrupted"
)


class UsageError(Exception):
    """An error caused by the input; reported as one clear message and exit code 2."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def make_parser(prog: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """An ArgumentParser whose epilog always documents the exit codes."""
    text = EXIT_CODES_HELP if not epilog else f"{epilog}\n\n{EXIT_CODES_HELP}"
    return argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def seconds(low: float = 0.0, high: float = 7 * 86400) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds in [low, high] (nan, inf, 1e300 are refused at parse time)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds in {low:g}..{high:g}")
        return value

    parse.__name__ = "seconds"
    return parse


def fail(message: str, hint: str | None = None) -> NoReturn:
    raise UsageError(message, hint)


def print_json(obj: object, stream=None) -> None:
    stream = stream or sys.stdout
    # one write: json.dump writes each token on its own (~200k writes for a corpus report)
    stream.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout stays machine-readable under --json."""
    print(message, file=sys.stderr, flush=True)


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> NoReturn:
    """Run a script's main(), turning expected failures into messages, never tracebacks."""
    try:
        code = main(argv)
    except UsageError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        code = EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        code = EXIT_OK
    sys.exit(code)
