"""``python -m helpers data`` and ``models``: one JSON object on stdout, clear errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

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


# -- bad input is refused before any work ----------------------------------


@pytest.mark.parametrize("bad, message", [
    (["--model", "nosuch"], "Unknown model name"),
    (["--model", "vgg11", "--model-option", "depthh=3"], "does not take option(s) depthh"),
])
def test_train_refuses_an_unknown_model_or_option_at_once_leaving_nothing(tmp_path, bad, message):
    fx.write_cifar10_python(tmp_path / "data", per_class=10)
    started = time.perf_counter()
    result = _run("train", *bad, "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                  "--train-size", "64", "--batch-size", "32", "--validation-size", "50", "--epochs", "1",
                  "--runs-dir", str(tmp_path / "runs"),
                  env_extra={"CIFAR_LAB_CACHE_DIR": str(tmp_path / "cache")})
    elapsed = time.perf_counter() - started
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert message in line and "Received" in line
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_refusing_an_unknown_model_reads_no_data_and_imports_no_tensorflow(tmp_path):
    code = (
        "import json, sys\n"
        "from helpers import data\n"
        "def no_data(*args, **kwargs):\n"
        "    raise AssertionError('the data was read')\n"
        "data.load_cifar = no_data\n"
        "from helpers.cli import main\n"
        f"status = main(['train', '--model', 'nosuch', '--dataset', 'cifar10', '--runs-dir', {str(tmp_path)!r}])\n"
        "print(json.dumps({'status': status, 'tensorflow': 'tensorflow' in sys.modules,\n"
        "                  'keras': 'keras' in sys.modules}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert json.loads(result.stdout) == {"status": 2, "tensorflow": False, "keras": False}, result.stderr
    assert "Unknown model name" in result.stderr


# -- TensorFlow's start-up lines -------------------------------------------


def _without_log_level() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def test_importing_helpers_quiets_tensorflow_unless_the_user_chose_a_level():
    code = "import os, helpers; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))"
    expected = "2" if os.path.exists("/proc/driver/nvidia/version") else "3"
    chosen = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=_without_log_level(),
                            capture_output=True, text=True, timeout=60)
    assert chosen.stdout.strip() == expected, chosen.stderr
    kept = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT,
                          env={**_without_log_level(), "TF_CPP_MIN_LOG_LEVEL": "0"},
                          capture_output=True, text=True, timeout=60)
    assert kept.stdout.strip() == "0", kept.stderr


def test_tensorflow_prints_no_start_up_errors_or_warnings_after_helpers():
    code = "import helpers, tensorflow as tf; print(float(tf.constant(1.0) + 1))"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=_without_log_level(),
                            capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "2.0", result.stderr
    assert "cuInit" not in result.stderr
    # absl's C++ log lines start "W0000 00:00:..." (warnings), "E0000 ..." (errors). Its
    # informational lines from before absl is initialised ("I0000 ... cudart_stub.cc"),
    # are printed whatever the level (abseil/abseil-cpp#1718): not checked here.
    assert not re.search(r"^[WE]\d{4} ", result.stderr, flags=re.MULTILINE), result.stderr


def test_report_without_its_extra_says_what_to_install(tmp_path):
    # A kernel-only install (no papermill): "report" must not vanish into argparse's "invalid choice".
    code = ("import sys\n"
            "sys.modules['papermill'] = None  # importing it now fails, as without the extra\n"
            "from helpers.cli import main\n"
            "sys.exit(main(['report', '--profile', 'quick', '--notebooks', '00', '--output-dir', sys.argv[1]]))\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "report")], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "report").exists()  # refused before anything ran
    assert "the report needs the package 'papermill'" in result.stderr
    assert 'pip install -c constraints.txt -e ".[report]"' in result.stderr
