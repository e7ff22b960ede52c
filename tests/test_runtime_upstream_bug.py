"""An AttributeError on an object of a vLLM class whose MRO never assigns the attribute is upstream's own bug
(0.33.0's OpenPanguDecoderLayer never sets the use_sequence_parallel_moe that DeepSeek's MTP layer reads, nor
EagleMistralLarge3Model the is_fused_shared_expert_enabled DeepseekV2Model.load_weights reads): the report says
"reference cannot run: upstream bug <Class.attr>" instead of a CPU failure."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def env(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"))
    import _runtime_env

    return _runtime_env


_MODELS = '''
class Base:
    def __init__(self):
        self.set_in_base = 1

    def later(self):
        self.set_later = 3


class Layer(Base):
    def __init__(self):  # the base's initializer skipped, as EagleMistralLarge3Model calls nn.Module's
        self.own: int = 2

    def reads(self, name):
        return getattr(self, name)


class Chained(Base):
    def __init__(self):
        super().__init__()
        del self.set_in_base

    def reads(self, name):
        return getattr(self, name)
'''


@pytest.fixture()
def layer(tmp_path, monkeypatch):
    """A class in a module named like vLLM's (its source found as upstream's is)."""
    import sys

    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("")
    (tmp_path / "vllm" / "fakemodels.py").write_text(_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("vllm", "vllm.fakemodels"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import vllm.fakemodels

    yield vllm.fakemodels
    for name in ("vllm", "vllm.fakemodels"):
        sys.modules.pop(name, None)


def _error(obj, name):
    try:
        obj.reads(name)
    except AttributeError as exc:
        return exc
    raise AssertionError("no AttributeError")


def test_an_attribute_no_class_of_the_object_sets_is_upstreams_bug(env, layer):
    assert env.unset_attribute(_error(layer.Layer(), "use_sequence_parallel_moe")) == "Layer.use_sequence_parallel_moe"
    # set only by the base's __init__, which the class's own __init__ never runs
    assert env.unset_attribute(_error(layer.Layer(), "set_in_base")) == "Layer.set_in_base"


def test_an_attribute_a_class_sets_somewhere_is_not_called_a_bug(env, layer):
    assert env.unset_attribute(_error(layer.Chained(), "set_in_base")) is None  # the base's __init__ did run
    assert env.unset_attribute(_error(layer.Layer(), "set_later")) is None  # another method of a base may set it
    obj = layer.Layer()
    del obj.own
    assert env.unset_attribute(_error(obj, "own")) is None  # annotated assignment in its own class


def test_an_object_outside_vllm_or_another_error_is_none(env):
    class Local:
        def reads(self, name):
            return getattr(self, name)

    assert env.unset_attribute(_error(Local(), "x")) is None
    assert env.unset_attribute(ValueError("x")) is None


@pytest.fixture()
def load(env):
    import _runtime_load

    return _runtime_load


def test_a_tabled_upstream_bug_is_supplied_for_naming_and_recorded(load, layer, monkeypatch):
    """UNSET_BY_UPSTREAM: the value the skipped initializer gives, set on the object that lacks it (the self-check
    then runs upstream's loader again); an attribute not in the table stays the bug it is."""
    monkeypatch.setitem(load.UNSET_BY_UPSTREAM, "Layer.set_in_base", {"value": False, "why": "w", "evidence": []})
    obj, supplied = layer.Layer(), []
    entry = load.supply_unset(_error(obj, "set_in_base"), supplied)
    assert obj.set_in_base is False and supplied == [entry]
    assert entry == {"id": "Layer.set_in_base=False", "evidence": "upstream bug Layer.set_in_base: w"}
    assert load.supply_unset(_error(layer.Layer(), "use_sequence_parallel_moe"), supplied) is None
    assert load.supply_unset(ValueError("x"), supplied) is None and len(supplied) == 1


def test_the_eagle_mistral_entry_is_the_bug_unset_attribute_names():
    """The table's key is what the report names for 0.33.0's EagleMistralLarge3Model, and its evidence lines are
    upstream's source lines (checked against the source when it is here)."""
    import os
    import re
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "flagos_migrate" / "verify"))
    from checkpoint_layouts import UNSET_BY_UPSTREAM

    entry = UNSET_BY_UPSTREAM["EagleMistralLarge3Model.is_fused_shared_expert_enabled"]
    assert entry["value"] is False
    src = Path(os.environ.get("MMF_UPSTREAM_SRC", Path.home() / ".cache/mmf/src/vllm-0.33.0"))
    if not (src / "vllm").is_dir():
        pytest.skip("needs upstream vLLM 0.33.0 source (MMF_UPSTREAM_SRC)")
    for line in entry["evidence"]:
        path, number, text = re.match(r"(\S+):(\d+): (.*)", line).groups()
        assert text.strip() in (src / path).read_text().splitlines()[int(number) - 1], line
