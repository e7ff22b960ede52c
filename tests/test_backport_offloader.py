"""P22 ``offloader.py``: upstream's ``vllm.model_executor.offloader`` (AliceAI asks which offloader runs) over what
vLLM 0.13.0 offloads: ``cpu_offload_gb`` through ``maybe_offload_to_cpu``, always over UVA, no prefetching.
The runtime half skips without $MMF_PINNED_VENV."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv


def test_an_import_from_upstreams_offloader_module_needs_the_backport():
    tree = ast.parse("from vllm.model_executor.offloader import PrefetchOffloader, UVAOffloader, get_offloader\n")
    lacks = {"vllm.model_executor.offloader"}
    assert backports.needed([tree], pinned_lacks=lambda module, name: module in lacks) == [backports.OFFLOADER]
    assert {name for name, _ in backports.OFFLOADER.names} == {
        "BaseOffloader", "NoopOffloader", "PrefetchOffloader", "UVAOffloader", "get_offloader"}


OFFLOADER = '''
    from vllm.model_executor.models import utils
    import offloader as off

    def alice_guard():
        """upstream alice_ai.py's refusal, word for word, over the back-port's offloader"""
        offloader = off.get_offloader()
        if isinstance(offloader, off.PrefetchOffloader):
            return "prefetch refused"
        if isinstance(offloader, off.UVAOffloader) and offloader.cpu_offload_max_bytes > 0 \\
                and not offloader.uva_offloading:
            return "non-UVA refused"
        return "built"

    layers = [torch.nn.Linear(2, 2) for _ in range(3)]
    utils.set_cpu_offload_max_bytes(0)
    noop = off.get_offloader()
    print("noop", type(noop) is off.NoopOffloader and noop.wrap_modules(iter(layers)) == layers
          and alice_guard() == "built")
    # cpu_offload_gb set: the pinned maybe_offload_to_cpu, over UVA (it asserts UVA), under upstream's name
    utils.set_cpu_offload_max_bytes(1 << 20)
    uva = off.get_offloader()
    wrapped = uva.wrap_modules(iter(layers))
    print("uva", type(uva) is off.UVAOffloader and uva.uva_offloading and uva.cpu_offload_max_bytes == 1 << 20
          and all(a is b for a, b in zip(wrapped, layers)) and alice_guard() == "built")
    utils.set_cpu_offload_max_bytes(0)
    try:
        off.PrefetchOffloader(group_size=1, num_in_group=1, prefetch_step=1)
        print("no_prefetch", False)
    except NotImplementedError:
        print("no_prefetch", True)
'''


@pytest.mark.slow
def test_the_offloader_says_what_the_pinned_vllm_offloads(tmp_path: Path):
    lines = run_in_pinned_venv(tmp_path, OFFLOADER)
    for check in ("noop", "uva", "no_prefetch"):
        assert lines[check] == "True", check
