"""The load level when the pinned transformers' checkpoint spelling fails: the pinned vLLM's own class of the
architecture decides (load_checkpoint). It loads the saved spelling: the migrated file's failure stands. It loads
the in-memory names: those are taken. It refuses both (Voxtral: transformers' audio_tower.*, which both vLLMs'
loaders refuse, reading Mistral's mm_whisper_embeddings.*): SpellingNotServed, and the reference side names the
checkpoint (upstream's own class judges, served_spelling). Pure: the loads are stubbed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts" / "flagos_migrate" / "verify"))

import _runtime_load as L  # noqa: E402


class Builtin:
    pass


def _ckpt(renamed: bool):
    ckpt = L.Checkpoint({"audio_tower.layers.0.fc1.weight": 1, "language_model.lm_head.weight": 2})
    ckpt.in_memory = ({"audio_tower.layers.0.fc1.weight": "audio_tower.layers.0.fc1.weight",
                       "language_model.lm_head.weight": "lm_head.weight"} if renamed else {})
    return ckpt


def _stub(monkeypatch, migrated_loads, builtin_loads):
    def load(model, ckpt, vc, builtin_params, notes):
        if not migrated_loads(ckpt):
            raise ValueError("There is no module or parameter named 'audio_tower' in LlamaForCausalLM")
        return {"loaded": len(ckpt)}

    monkeypatch.setattr(L, "_load", load)
    monkeypatch.setattr(L, "_loads", lambda cls, ckpt, work: builtin_loads(ckpt))


@pytest.mark.parametrize("renamed", [True, False])
def test_a_spelling_the_pinned_class_refuses_too_goes_to_the_reference(monkeypatch, renamed):
    _stub(monkeypatch, migrated_loads=lambda c: False, builtin_loads=lambda c: False)
    with pytest.raises(L.SpellingNotServed) as got:
        L.load_checkpoint(None, _ckpt(renamed), None, Builtin, "/w", [])
    assert str(got.value).startswith("the pinned vLLM's own Builtin refuses the spelling transformers saves"
                                     + (" and its in-memory names" if renamed else "") + " too (ValueError: There is")
    assert isinstance(got.value.__cause__, ValueError)  # the migrated load's own error, re-raised on the rerun


def test_a_spelling_the_pinned_class_loads_is_the_migrated_files_failure(monkeypatch):
    _stub(monkeypatch, migrated_loads=lambda c: False, builtin_loads=lambda c: True)
    with pytest.raises(ValueError):
        L.load_checkpoint(None, _ckpt(True), None, Builtin, "/w", [])


def test_no_pinned_class_or_a_read_checkpoint_keeps_the_failure(monkeypatch):
    _stub(monkeypatch, migrated_loads=lambda c: False, builtin_loads=lambda c: False)
    with pytest.raises(ValueError):
        L.load_checkpoint(None, _ckpt(True), None, None, "/w", [])
    with pytest.raises(ValueError):  # not a Checkpoint (nothing to respell)
        L.load_checkpoint(None, dict(_ckpt(True)), None, Builtin, "/w", [])


def test_the_in_memory_names_the_pinned_class_loads_are_taken(monkeypatch):
    _stub(monkeypatch, migrated_loads=lambda c: "lm_head.weight" in c,
          builtin_loads=lambda c: "lm_head.weight" in c)
    notes = []
    stats, loaded = L.load_checkpoint(None, _ckpt(True), None, Builtin, "/w", notes)
    assert sorted(loaded) == ["audio_tower.layers.0.fc1.weight", "lm_head.weight"] and stats == {"loaded": 2}
    assert "does not load the spelling transformers saves" in notes[0]


class Ernie:  # stands for upstream's own class, whose vision loader skips names it lacks
    pass


QKV = "vision_model.blocks.0.attn.qkv.weight"


def _partial(monkeypatch, derived_ok, kept=(), unwritten=(QKV,), own_ok=False):
    # ernie45_vl: transformers 5's model.vision_model.* reach upstream's language model, whose loader skips vision_model
    # names: no error, the tower unwritten (stubbed). Returns the calls made to _refusal
    calls = []

    def refusal(model, ckpt, vc, route_only=False, ignored=()):
        calls.append((route_only, set(ignored)))
        if route_only:
            return None, False
        left = [n for n in unwritten if n not in ignored]
        return (f"{len(left)} parameter(s) not written: {', '.join(left)}" if left else None), False

    derived = L.Checkpoint({QKV: 1})  # the released spelling, at the top
    monkeypatch.setattr(L, "_refusal", refusal)
    monkeypatch.setattr(L, "_kept", lambda model: {n: 0 for n in kept})
    monkeypatch.setattr(L, "_lent_or_shared", lambda model, vc, ckpt: [])
    own = L.Checkpoint({QKV: 1, "language_model.lm_head.weight": 2})
    monkeypatch.setattr(L, "own_names_of_skipped", lambda model, ckpt, vc, ignored=(): (
        (own, f"model.{QKV} -> {QKV}") if own_ok else (None, f"0 tensor(s) of its shape end in {QKV}")))
    monkeypatch.setattr(L, "named_by_upstream", lambda model, seed, vc: (
        (derived, None, None) if derived_ok else (derived, "1 parameter(s) not (fully) written by its load_weights: "
                                                           "x.weight", None)))
    return calls, derived if not own_ok else own


def test_a_spelling_upstreams_class_loads_only_in_part_takes_the_skipped_tensors_under_their_own_names(monkeypatch):
    calls, own = _partial(monkeypatch, derived_ok=True, own_ok=True)  # before any derived checkpoint
    served, why = L.served_spelling(Ernie(), _ckpt(False), None, 0)
    assert served is own
    assert why == ("of which upstream vLLM's own Ernie leaves 1 parameter(s) not written: "
                   "vision_model.blocks.0.attn.qkv.weight (a loader that skips names it lacks), so those tensors under "
                   "the parameters' own names (e.g. model.vision_model.blocks.0.attn.qkv.weight -> "
                   "vision_model.blocks.0.attn.qkv.weight), which its own load_weights writes back exactly")


def test_a_spelling_upstreams_class_loads_only_in_part_gives_way_to_the_one_it_writes_back(monkeypatch):
    calls, derived = _partial(monkeypatch, derived_ok=True)
    ckpt = _ckpt(False)
    served, why = L.served_spelling(Ernie(), ckpt, None, 0)
    assert served is derived and [c[0] for c in calls] == [True, False]
    assert why == ("of which upstream vLLM's own Ernie leaves 1 parameter(s) not written: "
                   "vision_model.blocks.0.attn.qkv.weight (a loader that skips names it lacks): the checkpoint named "
                   "by Ernie instead (validated by its own load_weights)")


def test_a_spelling_upstreams_class_loads_only_in_part_stays_when_nothing_derived_passes(monkeypatch):
    _partial(monkeypatch, derived_ok=False)
    ckpt = _ckpt(False)
    served, why = L.served_spelling(Ernie(), ckpt, None, 0)
    assert served is ckpt
    assert why == ("of which upstream vLLM's own Ernie leaves 1 parameter(s) not written: "
                   "vision_model.blocks.0.attn.qkv.weight too (a loader that skips names it lacks: not the spelling "
                   "it is served with); not under the parameters' own names (0 tensor(s) of its shape end in "
                   "vision_model.blocks.0.attn.qkv.weight), nor in any checkpoint derived from it (1 parameter(s) "
                   "not (fully) written by its load_weights: x.weight)")


def test_parameters_no_release_holds_never_respell(monkeypatch):
    # left unwritten only where kept at init by design (checkpoint_layouts.KEPT_AT_INIT): the saved spelling stands
    calls, _ = _partial(monkeypatch, derived_ok=True, kept=(QKV,))
    ckpt = _ckpt(False)
    assert L.served_spelling(Ernie(), ckpt, None, 0) == (ckpt, None)
    assert calls[-1] == (False, {QKV})
    _partial(monkeypatch, derived_ok=True, unwritten=())  # all written: it stands, nothing to say
    assert L.served_spelling(Ernie(), ckpt, None, 0) == (ckpt, None)


def test_a_checkpoint_named_by_upstreams_class_says_which_respelling_named_it(monkeypatch):
    # cohere_asr: transformers 5's spelling refused (raised), no in-memory renames; the derived checkpoint took a
    # respelling, which the note names with its evidence (before, the note said only "named by")
    monkeypatch.setattr(L, "_refusal", lambda model, ckpt, vc, route_only=False, ignored=(): ("KeyError: 'model.encoder.x'",
                                                                                             True))
    monkeypatch.setattr(L, "_kept", lambda model: {})
    monkeypatch.setattr(L, "_lent_or_shared", lambda model, vc, ckpt: [])
    derived = L.Checkpoint({"encoder.x": 1})
    entry = {"id": "nemo-asr-names", "evidence": "cohere_asr.py load_weights: NeMo's names"}
    monkeypatch.setattr(L, "named_by_upstream", lambda model, seed, vc: (derived, None, entry))
    served, why = L.served_spelling(Ernie(), _ckpt(False), None, 0)
    assert served is derived
    assert why.endswith("the checkpoint named by Ernie (validated by its own load_weights; nemo-asr-names: "
                        "cohere_asr.py load_weights: NeMo's names)")
    monkeypatch.setattr(L, "named_by_upstream", lambda model, seed, vc: (derived, None, None))
    assert L.served_spelling(Ernie(), _ckpt(False), None, 0)[1].endswith("(validated by its own load_weights)")
