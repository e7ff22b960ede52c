"""P22 ``pooling_params_update.py``: upstream's poolers merge their methods' requests with ``updates |= ...``,
which 0.13.0's ``PoolingParamsUpdate`` (same field, same ``apply``) cannot do. The runtime half runs the
back-port next to the real pinned class; it skips without $MMF_PINNED_VENV."""

from __future__ import annotations

import ast
from pathlib import Path

from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

POOLER = "vllm.model_executor.layers.pooler"
BP = backports.POOLING_PARAMS_UPDATE


def test_importing_it_or_a_vendored_pooler_that_merges_needs_the_backport():
    assert BP in backports.needed([ast.parse(f"from {POOLER} import PoolingParamsUpdate\n")])
    # LFM2's embedder: upstream's pooler_for_embed is vendored (P16) and its SequencePooler merges with |=
    lfm2 = ast.parse(f"from {POOLER}.seqwise import pooler_for_embed\n")
    assert BP in backports.needed([lfm2], pinned_lacks=lambda m, n: False)
    assert BP not in backports.needed([ast.parse(f"from {POOLER} import DispatchPooler\n")],
                                      pinned_lacks=lambda m, n: False)
    assert BP.repoints(POOLER, "PoolingParamsUpdate") and BP.repoints(POOLER + ".common", "PoolingParamsUpdate")


RUN = '''
    from vllm.model_executor.layers.pooler import PoolingParamsUpdate as Pinned
    from vllm.pooling_params import PoolingParams
    import pooling_params_update as bp

    try:
        Pinned() | Pinned(requires_token_ids=True)
        print("pinned_or yes")
    except TypeError:
        print("pinned_or no")
    out = {}
    for a in (False, True):
        for b in (False, True):
            u = bp.PoolingParamsUpdate(requires_token_ids=a)
            u |= Pinned(requires_token_ids=b)  # a method's update: the pinned class
            out[f"{a}{b}"] = u.requires_token_ids
            params = PoolingParams()
            u.apply(params)  # the pinned runner's call
            assert params.requires_token_ids == u.requires_token_ids and isinstance(u, Pinned)
    print("merged " + " ".join(f"{k}={v}" for k, v in sorted(out.items())))
'''


def test_the_backport_merges_as_upstream_on_the_real_pinned_vllm(tmp_path: Path):
    got = run_in_pinned_venv(tmp_path, RUN)
    assert got["pinned_or"] == "no"  # what upstream's poolers raised on 0.13.0
    assert got["merged"] == "FalseFalse=False FalseTrue=True TrueFalse=True TrueTrue=True"
