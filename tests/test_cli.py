"""``python -m helpers data`` and ``models``: one JSON object on stdout, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests import cifar_fixtures as fx
from tests.conftest import PROJECT_ROOT


def _run(*args, env_extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, env=env, timeout=600)


def test_data_json_on_generated_copy(tmp_path):
    fx.write_cifar10_python(tmp_path / "d", per_class=12)  # 600 training images
    result = _run("data", "--dataset", "cifar10", "--data-dir", str(tmp_path / "d"),
                  "--validation-size", "100", "--json",
                  env_extra={"CIFAR_LAB_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)  # exactly one JSON object
    assert payload["train"] == [500, 32, 32, 3]
    assert payload["validation"] == [100, 32, 32, 3]
    assert payload["test"] == [120, 32, 32, 3]
    assert payload["num_classes"] == 10 and payload["class_names"][0] == "airplane"
    assert payload["source"].startswith("python-folder:")
    assert len(payload["mean"]) == 3 and len(payload["std"]) == 3


def test_data_error_goes_to_stderr_with_nonzero_exit(tmp_path):
    result = _run("data", "--dataset", "cifar100", "--data-dir", str(tmp_path), "--json")
    assert result.returncode != 0
    assert result.stdout == ""
    assert "No cifar100 data found" in result.stderr and str(tmp_path) in result.stderr


@pytest.mark.real_data
@pytest.mark.parametrize("dataset, classes", [("cifar10", 10), ("cifar100", 100)])
def test_data_json_on_real_copies(real_data_dir, dataset, classes):
    result = _run("data", "--dataset", dataset, "--data-dir", str(real_data_dir), "--json")
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["train"] == [45000, 32, 32, 3]
    assert payload["validation"] == [5000, 32, 32, 3]
    assert payload["test"] == [10000, 32, 32, 3]
    assert payload["num_classes"] == classes


def test_models_json_lists_every_model_with_size_and_cost():
    result = _run("models", "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    from helpers.models import list_models

    assert sorted(table) == sorted(list_models())
    for row in table.values():
        assert row["params_100"] > row["params_10"] > 0 and row["macs_10"] > 0
    # He et al. Table 6, within 2%.
    for name, published in (("resnet20", 0.27e6), ("resnet56", 0.85e6), ("resnet110", 1.7e6)):
        assert abs(table[name]["params_10"] - published) / published < 0.02
