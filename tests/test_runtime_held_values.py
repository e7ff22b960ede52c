"""The load level's count of checkpoint values a class can hold: upstream's RoBERTa builds its position and
token-type embeddings as VocabParallelEmbedding (rows padded to 64) where 0.13.0's builds nn.Embedding, so
comparing raw parameter sizes with the pinned vLLM's own class said RobertaModel left values unloaded that the
pinned class leaves unloaded too (the HF pooler both skip). A padded parameter counts the checkpoint rows."""

from __future__ import annotations

import sys
from math import prod
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"))

from _runtime_load import held_values  # noqa: E402


class T:  # the three tensor attributes held_values reads
    def __init__(self, *shape):
        self.shape = shape

    def dim(self):
        return len(self.shape)

    def numel(self):
        return prod(self.shape)


CKPT = {"embeddings.token_type_embeddings.weight": T(2, 64), "embeddings.word_embeddings.weight": T(100, 64),
        "encoder.layer.0.dense.weight": T(64, 64), "pooler.dense.weight": T(64, 64)}


def test_a_padded_embedding_counts_the_rows_its_checkpoint_holds():
    pinned = {"model.embeddings.token_type_embeddings.weight": T(2, 64),
              "model.embeddings.word_embeddings.weight": T(100, 64), "model.encoder.layer.0.dense.weight": T(64, 64)}
    upstream = {"model.embeddings.token_type_embeddings.weight": T(64, 64),
                "model.embeddings.word_embeddings.weight": T(128, 64), "model.encoder.layer.0.dense.weight": T(64, 64)}
    assert held_values(pinned, CKPT) == held_values(upstream, CKPT) == (2 + 100 + 64) * 64
    # a parameter with other trailing dims, or one the checkpoint does not name, counts its own size
    assert held_values({"model.encoder.layer.0.dense.weight": T(64, 32)}, CKPT) == 64 * 32
    assert held_values({"extra.weight": T(3, 64)}, CKPT) == 3 * 64
    # a layer left out is not hidden by padding elsewhere
    assert held_values(pinned, CKPT) != held_values({**upstream, "model.pooler.dense.weight": T(64, 64)}, CKPT)
