"""Standalone worker of ``import_probe``: runs under a *foreign* Python (e.g. a venv with vLLM).

It must import nothing but the standard library before preloading, and nothing from
``flagos_migrate`` at all, because the foreign Python does not have this bundle on its path.

Protocol. argv[1] is a JSON object ``{"sys_path": [...], "preload": [...], "jobs": N,
"timeout": seconds, "modules": [...], "no_init": [...]}``. The worker prepends ``sys_path``,
registers each ``no_init`` package without running its ``__init__.py`` (a plugin's ``__init__``
may import GPU-only packages that its model files never need), imports every
``preload`` module once (failures are only recorded), then, for each module, forks a child that
imports it and writes one JSON result to a pipe. A child that outlives ``timeout`` is killed with
its process group. At most ``jobs`` children run at once. Each result is written as one JSON
line to the protocol stream (the original stdout); everything the imports print goes to stderr
(worker) or a scratch file (children), so the protocol cannot be corrupted.

One worker process runs ``jobs`` children at once: the preload is paid once, and the forks share
its memory copy-on-write.

Why fork: importing torch + vLLM costs many seconds; forking a preloaded process costs
milliseconds, and every module still starts from the same clean, preloaded state, so one
file's side effects (custom-op registrations) never leak into the next.
"""

import json
import os
import select
import signal
import sys
import tempfile
import time

MAX_FRAMES = 12
MAX_MESSAGE = 2000
TAIL_BYTES = 1500


def _frames(tb):
    out = []
    while tb is not None:
        code = tb.tb_frame.f_code
        out.append({"file": code.co_filename, "line": tb.tb_lineno, "func": code.co_name,
                    "module": tb.tb_frame.f_globals.get("__name__")})
        tb = tb.tb_next
    return out[-MAX_FRAMES:]


def _raised_in(tb):
    """Top-level package of the innermost frame outside the import machinery, and whether it is
    the standard library: an error raised inside a third-party package is the environment's."""
    top = None
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__") or ""
        if name and not name.startswith(("importlib", "_frozen_importlib")):
            top = name.split(".", 1)[0]
        tb = tb.tb_next
    stdlib = getattr(sys, "stdlib_module_names", ())
    return top, bool(top) and (top in stdlib or top in sys.builtin_module_names)


def _describe(exc, origin):
    """JSON-ready description of the first error raised while importing the probed module."""
    cls = type(exc)
    info = {
        "ok": False,
        "type": cls.__name__,
        "qualtype": f"{cls.__module__}.{cls.__qualname__}",
        "message": str(exc)[:MAX_MESSAGE],
        "origin": origin,
        "frames": _frames(exc.__traceback__),
        "bases": [b.__name__ for b in cls.__mro__[1:-1]],
    }
    info["raised_in"], info["raised_in_stdlib"] = _raised_in(exc.__traceback__)
    if isinstance(exc, ImportError):
        info["import_name"] = exc.name
        info["import_path"] = exc.path
    if isinstance(exc, SyntaxError):
        info["syntax_file"] = exc.filename
        info["syntax_line"] = exc.lineno
    if isinstance(exc, AttributeError):
        info["attr_name"] = getattr(exc, "name", None)
    return info


def _die_with_parent(parent):
    """Linux: SIGKILL this child when the worker dies, so no hung import outlives a killed probe."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the worker died before prctl took effect
        os._exit(71)


def _child(module, wfd, scratch_fd, parent):
    """Runs in the forked child: import ``module`` and write the verdict to ``wfd``."""
    os.setpgid(0, 0)
    _die_with_parent(parent)
    os.dup2(scratch_fd, 1)
    os.dup2(scratch_fd, 2)
    start = time.monotonic()
    origin = None
    try:
        import importlib
        import importlib.util

        try:
            spec = importlib.util.find_spec(module)
            origin = spec.origin if spec is not None else None
        except Exception:  # the parent package failing is reported by import_module below
            origin = None
        importlib.import_module(module)
        result = {"ok": True, "origin": origin}
    except BaseException as exc:  # SystemExit and KeyboardInterrupt from a module count too
        try:
            result = _describe(exc, origin)
        except Exception as inner:  # str(exc) itself may raise
            result = {"ok": False, "type": type(exc).__name__, "message": f"<unprintable: {inner!r}>",
                      "origin": origin, "frames": []}
    result["seconds"] = round(time.monotonic() - start, 4)
    data = json.dumps(result, default=str).encode("utf-8")
    view = memoryview(data)
    while view:
        n = os.write(wfd, view)
        view = view[n:]
    os.close(wfd)
    os._exit(0)


class _Running:
    def __init__(self, module, pid, rfd, scratch, deadline, start):
        self.module = module
        self.pid = pid
        self.rfd = rfd
        self.scratch = scratch
        self.deadline = deadline
        self.start = start
        self.chunks = []


def _tail(scratch):
    try:
        scratch.seek(0, os.SEEK_END)
        size = scratch.tell()
        scratch.seek(max(0, size - TAIL_BYTES))
        return scratch.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _spawn(module, timeout):
    rfd, wfd = os.pipe()
    scratch = tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            _child(module, wfd, scratch.fileno(), parent)
        finally:
            os._exit(70)
    os.close(wfd)
    now = time.monotonic()
    return _Running(module, pid, rfd, scratch, now + timeout, now)


def _kill(run):
    for target in (lambda: os.killpg(run.pid, signal.SIGKILL), lambda: os.kill(run.pid, signal.SIGKILL)):
        try:
            target()
        except OSError:
            pass


def _finish(run, timed_out):
    """Reap the child and build its result (from its JSON, or from how it died)."""
    if timed_out:
        _kill(run)
    _, status = os.waitpid(run.pid, 0)
    os.close(run.rfd)
    # A child may leave grandchildren in its group; never let them outlive the probe.
    try:
        os.killpg(run.pid, signal.SIGKILL)
    except OSError:
        pass
    elapsed = round(time.monotonic() - run.start, 4)
    raw = b"".join(run.chunks)
    result = None
    if raw and not timed_out:
        try:
            result = json.loads(raw.decode("utf-8"))
        except ValueError:
            result = None
    if result is None:
        if timed_out:
            kind, message = "Timeout", "import did not finish in time"
        elif os.WIFSIGNALED(status):
            kind, message = "Crashed", f"killed by signal {os.WTERMSIG(status)}"
        else:
            kind, message = "Exited", f"process exited with code {os.WEXITSTATUS(status)} during import"
        result = {"ok": False, "type": kind, "message": message, "frames": [], "output_tail": _tail(run.scratch)}
    result["module"] = run.module
    result["seconds"] = result.get("seconds", elapsed)
    result["wall_seconds"] = elapsed
    run.scratch.close()
    return result


def _emit(out, obj):
    out.write(json.dumps(obj, default=str) + "\n")
    out.flush()


def run(request, out):
    for entry in reversed(request.get("sys_path") or []):
        sys.path.insert(0, entry)
    preload_failed = {}
    t0 = time.monotonic()
    import importlib
    import importlib.machinery
    import importlib.util

    no_init = {}
    for name in request.get("no_init") or []:
        spec = importlib.machinery.PathFinder.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            sys.modules[name] = importlib.util.module_from_spec(spec)  # registered, never executed
            no_init[name] = spec.origin

    for name in request.get("preload") or []:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # a preload failure is not fatal: the child retries for real
            preload_failed[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
    # Keep the preloaded objects out of the collector's reach: otherwise every fork's first GC
    # pass writes to (and so copies) the parent's pages.
    import gc

    gc.collect()
    gc.freeze()
    _emit(out, {"event": "ready", "preload_seconds": round(time.monotonic() - t0, 3),
                "preload_failed": preload_failed, "python": sys.version.split()[0],
                "no_init": no_init})

    pending = list(request.get("modules") or [])
    pending.reverse()
    jobs = max(1, int(request.get("jobs") or 1))
    timeout = float(request.get("timeout") or 120)
    running = {}
    while pending or running:
        while pending and len(running) < jobs:
            run_ = _spawn(pending.pop(), timeout)
            running[run_.rfd] = run_
        now = time.monotonic()
        wait = max(0.0, min(r.deadline for r in running.values()) - now)
        ready, _, _ = select.select(list(running), [], [], min(wait, 1.0))
        for fd in ready:
            run_ = running[fd]
            chunk = os.read(fd, 65536)
            if chunk:
                run_.chunks.append(chunk)
            else:  # EOF: the child wrote its verdict (or died)
                del running[fd]
                _emit(out, {"event": "result", **_finish(run_, timed_out=False)})
        now = time.monotonic()
        for fd, run_ in list(running.items()):
            if now >= run_.deadline:
                del running[fd]
                _emit(out, {"event": "result", **_finish(run_, timed_out=True)})
    _emit(out, {"event": "done"})


def main():
    _die_with_parent(os.getppid())  # a killed probe takes its worker (and so every child) along
    # Keep the protocol on a private copy of stdout; whatever imports print goes to stderr.
    proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    request = json.loads(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else json.load(sys.stdin)
    run(request, proto)
    proto.close()


if __name__ == "__main__":
    main()
