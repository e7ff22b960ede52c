"""Print a config's attributes as JSON, in whichever Python runs it (round-trip tests of P2 bridges).

usage: python tf5_config_attrs.py SPEC_JSON [SYS_PATH]
SPEC_JSON lists ``{"target": "MODULE:CLASS", "config": PATH, "names": {...} or null}``; one Python
answers them all (importing transformers is the slow part). Without names they are the class's
fields (transformers 5 dataclass fields) plus the keys of config.json, recursively for sub-configs.
Printed: a JSON list of ``{"names": ..., "values": ...}``.
"""

import dataclasses
import importlib
import json
import sys


def names_of(cfg, raw):
    names = {f.name for f in dataclasses.fields(cfg)} if dataclasses.is_dataclass(cfg) else set()
    names |= set(raw) | {"rope_parameters", "rope_theta"}
    names -= {"transformers_version", "_name_or_path", "dtype", "torch_dtype", "architectures"}
    out = {}
    for n in sorted(names):
        sub = getattr(cfg, n, None)
        out[n] = names_of(sub, raw.get(n) or {}) if hasattr(sub, "to_dict") else None
    return out


def value(v):
    if isinstance(v, tuple):
        v = list(v)
    return json.loads(json.dumps(v, default=str))


def values_of(cfg, names):
    return {n: (values_of(getattr(cfg, n), sub) if sub is not None else value(getattr(cfg, n, "<missing>")))
            for n, sub in names.items()}


def one(job):
    mod, _, cls = job["target"].partition(":")
    raw = json.load(open(job["config"]))
    cfg = getattr(importlib.import_module(mod), cls)(**json.loads(json.dumps(raw)))
    names = job.get("names") or names_of(cfg, raw)
    return {"names": names, "values": values_of(cfg, names)}


def main():
    if len(sys.argv) > 2:
        sys.path.insert(0, sys.argv[2])
    print(json.dumps([one(job) for job in json.load(open(sys.argv[1]))]))


if __name__ == "__main__":
    main()
