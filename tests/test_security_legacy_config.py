"""Issue 15, item 8: the earlier FlagOS e2e_config.json layout is accepted, mapped and said once."""

from __future__ import annotations

import json

import pytest
from flagos_migrate.cli import UsageError
from flagos_migrate.e2e.config import overrides_from_config
from flagos_migrate.remote.config import load_config

from tests.test_remote_serve import make_config, needs_sshd, records, run, sshd  # noqa: F401  (fixtures)

OLD = {"model": "m1",
       "gt_machine": {"host": "gt-node-01", "ssh_user": "ubuntu", "ssh_port": 2222, "ssh_key": "~/.ssh/gt",
                      "vllm_port": 8001, "gpu_ids": "0,1", "extra_serve_args": "--max-model-len 4096 --trust-remote-code"},
       "local": {"vllm_port": 8123},
       "shared_storage": {"models_dir": "/data/models", "results_dir": "old_results"}}


def test_old_layout_maps_onto_todays_fields(tmp_path, capsys):
    path = tmp_path / "e2e_config.json"
    path.write_text(json.dumps(OLD))
    machine, model = load_config(path)
    assert (machine.user, machine.port, machine.key_file, machine.serve_port) == ("ubuntu", 2222, "~/.ssh/gt", 8001)
    assert machine.gpus == "0,1" and machine.models_dir == "/data/models"
    assert machine.extra_args == ("--max-model-len", "4096", "--trust-remote-code") and model == "m1"
    err = capsys.readouterr().err
    assert err.count("earlier FlagOS layout") == 1 and "gt_machine.ssh_user -> gt_machine.user" in err
    over = overrides_from_config(OLD)
    assert (over["gt_port"], over["local_port"], over["results_dir"]) == (8001, 8123, "old_results")


@pytest.mark.parametrize("extra", ["--x 'unclosed", "--a '\x00'"])
def test_old_extra_serve_args_are_split_and_validated(tmp_path, extra):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({**OLD, "gt_machine": {**OLD["gt_machine"], "extra_serve_args": extra}}))
    with pytest.raises(UsageError):
        load_config(path)


def test_old_and_new_name_with_different_values_is_refused():
    with pytest.raises(UsageError, match="both"):
        overrides_from_config({**OLD, "local": {"vllm_port": 1, "port": 2}})


@needs_sshd
def test_an_old_layout_config_starts_the_gt_server_over_real_ssh(make_config, tmp_path):  # noqa: F811
    new = json.loads(make_config().read_text())
    gt = new["gt_machine"]
    old_gt = {k: v for k, v in gt.items() if k not in ("user", "port", "key_file", "serve_port", "gpus",
                                                        "extra_args", "models_dir")}
    old_gt.update(ssh_user=gt["user"], ssh_port=gt["port"], ssh_key=gt["key_file"], vllm_port=gt["serve_port"],
                  gpu_ids="3", extra_serve_args="--enforce-eager --max-model-len '4096'")
    config = tmp_path / "old_layout.json"
    config.write_text(json.dumps({"model": "m1", "gt_machine": old_gt, "local": {"vllm_port": 8122},
                                  "shared_storage": {"models_dir": "/models", "results_dir": "r"}}))
    started = run("start", config, "--poll", "0.1", "--timeout", "30")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stderr.count("earlier FlagOS layout") == 1
        [rec] = records(make_config.record)
        assert rec["argv"][:2] == ["serve", "/models/m1"] and rec["argv"][-3:] == ["--enforce-eager",
                                                                                  "--max-model-len", "4096"]
        assert rec["env"]["CUDA_VISIBLE_DEVICES"] == "3"
    finally:
        assert run("stop", config).returncode == 0
