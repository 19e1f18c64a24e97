"""benchmarks/rotation.py and the rotation it shares with throughput.py: variant parsing,
rotation order and the summary (no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import rotation  # noqa: E402


def test_a_variant_names_a_checkout_a_kind_and_its_environment():
    name, root, kind, environment = rotation.parse_variant(
        f"one={ROOT}:tensorflow:TF_NUM_INTEROP_THREADS=1,TF_CPP_MIN_LOG_LEVEL=3")
    assert (name, root, kind) == ("one", ROOT, "tensorflow")
    assert environment == {"TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    assert rotation.parse_variant(f"ref={ROOT}:torch")[2:] == ("torch", {})


@pytest.mark.parametrize("text, message", [
    ("head", "expected NAME=ROOT:KIND"),
    (f"head={ROOT}", "expected NAME=ROOT:KIND"),
    (f"head={ROOT}:tf", "KIND must be one of tensorflow, torch"),
    ("head=/no/such/checkout:tensorflow", "is not a project checkout"),
    (f"head={ROOT}:tensorflow:THREADS", "environment entries are VAR=VALUE"),
])
def test_bad_variants_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message) as error:
        rotation.parse_variant(text)
    assert text in str(error.value)


class _FakeWorker:
    def __init__(self, name, log, rate):
        self.name, self.log, self.rate = name, log, rate

    def repeat(self):
        self.log.append(self.name)
        return self.rate


def test_each_round_times_every_variant_and_the_first_moves_on():
    log = []
    workers = {name: _FakeWorker(name, log, rate) for name, rate in (("a", 300.0), ("b", 250.0), ("c", 200.0))}
    rates = dict(zip(workers, rotation.throughput.rotate(list(workers.values()), rounds=4)))
    assert log == ["a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert rates == {"a": [300.0] * 4, "b": [250.0] * 4, "c": [200.0] * 4}
    summary = rotation.summarise(rates, reference="c")
    assert summary["a"]["ratio_to_reference"] == 1.5
    assert summary["c"]["ratio_to_reference"] == 1.0
    assert summary["b"]["images_per_second"] == 250.0


def test_the_command_line_refuses_a_single_variant(capsys):
    with pytest.raises(SystemExit):
        rotation.main([f"--variant=head={ROOT}:tensorflow"])
    assert "at least two --variant options" in capsys.readouterr().err


def test_the_handwritten_resnet20_script_trains_on_the_engines_split_and_prints_json(tmp_path):
    import json
    import subprocess
    import sys

    from tests.cifar_fixtures import write_cifar10_python
    from tests.conftest import PROJECT_ROOT
    from tests.engine_helpers import subprocess_env

    write_cifar10_python(tmp_path / "data", per_class=60)
    done = subprocess.run([sys.executable, "benchmarks/handwritten_resnet20.py", "--data-dir", str(tmp_path / "data"),
                           "--epochs", "1", "--batch-size", "100", "--validation-size", "500"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=300, env=subprocess_env(CIFAR_LAB_CACHE_DIR=str(tmp_path / "cache")))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["epochs"] == 1 and len(result["val_accuracy"]) == 1
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["wall_seconds"] > 0
    assert result["peak"] == 0.4 and result["weight_decay"] == 5e-4 and result["label_smoothing"] == 0.1
    assert 270_000 < result["parameters"] < 280_000  # ResNet-20 with projection shortcuts
