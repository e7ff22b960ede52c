"""P22 ``special_poolers.py``: upstream's ``BOSEOSFilter`` and ``BgeM3Pooler`` (RoBERTa's BGE-M3 embedder), which
0.13.0 lacks; importing them failed the whole roberta file. The runtime half runs them over the real pinned
``PoolingMetadata`` / ``PoolingParamsUpdate``; it skips without $MMF_PINNED_VENV."""

from __future__ import annotations

import ast
from pathlib import Path

from flagos_migrate.migrate import backports

from tests.test_backports import run_in_pinned_venv

POOLER = "vllm.model_executor.layers.pooler"
BP = backports.SPECIAL_POOLERS


def test_importing_the_wrappers_needs_the_backport_and_its_merge():
    tree = ast.parse(f"from {POOLER} import BgeM3Pooler, BOSEOSFilter, DispatchPooler\n")
    assert BP in backports.needed([tree])
    assert backports.POOLING_PARAMS_UPDATE in backports.with_requirements([BP])
    assert BP.repoints(POOLER, "BOSEOSFilter") and BP.repoints(POOLER + ".special", "BgeM3Pooler")
    assert not BP.repoints(POOLER, "DispatchPooler")


RUN = '''
    from vllm.model_executor.layers.pooler import Pooler, PoolingParamsUpdate as Pinned
    from vllm.pooling_params import PoolingParams
    from vllm.v1.pool.metadata import PoolingMetadata, PoolingStates
    import special_poolers as sp

    class Rows(Pooler):  # a per-token pooler: each request's rows [n, 1], asks nothing of the runner
        def __init__(self, asks=False):
            super().__init__()
            self.asks = asks
        def get_supported_tasks(self):
            return {"token_classify", "embed"}
        def get_pooling_updates(self, task):
            return Pinned(requires_token_ids=self.asks)
        def forward(self, hidden, md):
            out, start = [], 0
            for n in md.prompt_lens.tolist():
                out.append(hidden[start:start + n]); start += n
            return out

    ids = torch.tensor([[0, 5, 6, 2], [7, 8, 9, 2]])  # BOS 0, EOS 2
    md = PoolingMetadata(prompt_lens=torch.tensor([4, 4]), prompt_token_ids=ids,
                         pooling_params=[PoolingParams(task="token_classify") for _ in range(2)],
                         pooling_states=[PoolingStates() for _ in range(2)])
    hidden = torch.arange(8, dtype=torch.float32).unsqueeze(-1)
    both = sp.BOSEOSFilter(Rows(), bos_token_id=0, eos_token_id=2)(hidden, md)
    bos_only = sp.BOSEOSFilter(Rows(), bos_token_id=0)(hidden, md)
    print("both", [t.tolist() for t in both])
    print("bos_only", [t.tolist() for t in bos_only])
    upd = sp.BOSEOSFilter(Rows()).get_pooling_updates("token_classify")
    print("asks_ids", isinstance(upd, Pinned) and upd.requires_token_ids)
    m3 = sp.BgeM3Pooler(sp.BOSEOSFilter(Rows(), 0, 2), Rows())
    print("m3", [t.tolist() for t in m3(hidden, md)])
    print("m3_asks", m3.get_pooling_updates("embed&token_classify").requires_token_ids,
          sp.BgeM3Pooler(Rows(), Rows()).get_pooling_updates("embed&token_classify").requires_token_ids)
'''


def test_the_wrappers_filter_and_concatenate_as_upstream_on_the_real_pinned_vllm(tmp_path: Path):
    got = run_in_pinned_venv(tmp_path, RUN)
    # upstream: BOS row dropped when the prompt starts with BOS, EOS row when it ends with EOS, then squeeze(-1)
    assert got["both"] == "[[1.0, 2.0], [4.0, 5.0, 6.0]]"
    assert got["bos_only"] == "[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]"
    assert got["asks_ids"] == "True"
    # embed output flattened, then the filtered sparse weights
    assert got["m3"] == "[[0.0, 1.0, 2.0, 3.0, 1.0, 2.0], [4.0, 5.0, 6.0, 7.0, 4.0, 5.0, 6.0]]"
    assert got["m3_asks"] == "True False"
