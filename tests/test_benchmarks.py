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
    from helpers.records import unpack_bits

    correct = unpack_bits(result["test_correct"], result["test_images"])
    assert abs(correct.mean() - result["test_accuracy"]) < 1e-6
    assert len(result["test_labels_digest"]) == 64


def _load_onecycle_recipe():
    import importlib.util

    from tests.conftest import PROJECT_ROOT

    spec = importlib.util.spec_from_file_location("onecycle_recipe", PROJECT_ROOT / "benchmarks" / "onecycle_recipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_onecycle_recipe_chooses_on_validation_never_on_test():
    recipe = _load_onecycle_recipe()
    rows = [
        {"run_id": "a", "status": "completed", "weight_decay": 1e-4, "label_smoothing": 0.0,
         "final_val_accuracy": 0.80, "test_accuracy": 0.95},
        {"run_id": "b", "status": "completed", "weight_decay": 5e-4, "label_smoothing": 0.1,
         "final_val_accuracy": 0.83, "test_accuracy": 0.10},
        {"run_id": "c", "status": "diverged", "weight_decay": 5e-4, "label_smoothing": 0.0,
         "final_val_accuracy": 0.90, "test_accuracy": 0.99},
    ]
    assert recipe.choose(rows)["run_id"] == "b"
    with pytest.raises(ValueError, match="No completed grid run has a validation accuracy"):
        recipe.choose([dict(rows[0], final_val_accuracy=None)])


def test_onecycle_recipe_chooses_the_rise_on_the_mean_validation_over_seeds():
    """The rise step judges each arm on its mean final validation accuracy over
    all its seeds, not on one seed (nor on test), and refuses a mean over a run
    that did not complete or over different seeds."""
    recipe = _load_onecycle_recipe()

    def run(seed, val, test=0.5, status="completed"):
        return {"run_id": f"r{seed}-{val}", "seed": seed, "status": status, "final_val_accuracy": val,
                "test_accuracy": test}

    kept = {"rise": {}, "runs": [run(0, 0.84, test=0.99), run(1, 0.80), run(2, 0.80)]}
    script = {"rise": {"pct_start": 0.3}, "runs": [run(0, 0.83), run(1, 0.82), run(2, 0.82)]}
    assert recipe.choose_over_seeds([kept, script]) is script  # seed 0 alone would choose `kept`
    tie = {"rise": {"pct_start": 0.3}, "runs": [run(0, 0.80), run(1, 0.84), run(2, 0.80)]}
    assert recipe.choose_over_seeds([kept, tie]) is kept  # a tie keeps the shape chosen before
    with pytest.raises(ValueError, match="completed run with a validation accuracy"):
        recipe.choose_over_seeds([kept, {"rise": {}, "runs": [run(0, 0.9), run(1, 0.9, status="diverged"),
                                                              run(2, 0.9)]}])
    with pytest.raises(ValueError, match="completed run with a validation accuracy"):
        recipe.choose_over_seeds([kept, {"rise": {}, "runs": [run(0, None), run(1, 0.9), run(2, 0.9)]}])
    with pytest.raises(ValueError, match="different seeds"):
        recipe.choose_over_seeds([kept, {"rise": {}, "runs": [run(0, 0.9), run(1, 0.9), run(3, 0.9)]}])


def test_onecycle_recipe_pairs_the_cli_and_the_script_image_by_image():
    import numpy as np

    from helpers.records import labels_digest, pack_bits

    recipe = _load_onecycle_recipe()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 2000)
    digest = labels_digest(labels)

    def cli(p):
        return {"run_id": f"r{p}", "test_predictions": {"accuracy": pack_bits(rng.random(2000) < p),
                                                        "images": 2000, "labels_digest": digest}}

    def hand(p, seed):
        return {"seed": seed, "test_correct": pack_bits(rng.random(2000) < p), "test_images": 2000,
                "test_labels_digest": digest}

    better = recipe.comparison([cli(0.9), cli(0.9)], [hand(0.6, 0), hand(0.6, 1)])
    assert better["verdict"] == "the CLI is stronger"
    assert 0.25 < better["cli_minus_handwritten"]["estimate"] < 0.35 and better["cli_minus_handwritten"]["seeds"] == 2
    worse = recipe.comparison([cli(0.6), cli(0.6)], [hand(0.9, 0), hand(0.9, 1)])
    assert worse["verdict"] == "the hand-written script is stronger"
    same = recipe.comparison([cli(0.7), cli(0.7)], [hand(0.7, 0), hand(0.7, 1)])
    assert same["verdict"].startswith("the budget does not resolve a difference")
    with pytest.raises(ValueError, match="different test images"):
        recipe.comparison([cli(0.7)], [dict(hand(0.7, 0), test_labels_digest="x" * 64)])
    with pytest.raises(ValueError, match="no per-image test scores"):
        recipe.comparison([{"run_id": "r", "test_predictions": {}}], [hand(0.7, 0)])


@pytest.mark.slow
def test_onecycle_recipe_runs_the_cli_and_the_script_end_to_end(tmp_path):
    """The plumbing on tiny data: the grid through the CLI, the choice, the
    CLI default against the hand-written script, one JSON object; a second
    call trains nothing (engine cache and the script's kept JSON)."""
    import json
    import subprocess
    import sys

    from tests.cifar_fixtures import write_cifar10_python
    from tests.conftest import PROJECT_ROOT
    from tests.engine_helpers import subprocess_env

    write_cifar10_python(tmp_path / "data", per_class=30)
    command = [sys.executable, "benchmarks/onecycle_recipe.py", "--data-dir", str(tmp_path / "data"),
               "--runs-dir", str(tmp_path / "runs"), "--seeds", "0", "1",
               "--cli-option=--lr=0.05", "--cli-option=--epochs=1", "--cli-option=--batch-size=50",
               "--cli-option=--validation-size=100", "--cli-option=--progress=none",
               "--handwritten-option=--batch-size=50", "--handwritten-option=--validation-size=100"]
    env = subprocess_env(CIFAR_LAB_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert len(result["grid"]) == 4 and {(row["weight_decay"], row["label_smoothing"]) for row in result["grid"]} == {
        (1e-4, 0.0), (1e-4, 0.1), (5e-4, 0.0), (5e-4, 0.1)}
    best = max(row["final_val_accuracy"] for row in result["grid"])
    chosen = result["chosen_on_validation"]
    assert any(row["final_val_accuracy"] == best and row["weight_decay"] == chosen["weight_decay"]
               and row["label_smoothing"] == chosen["label_smoothing"] for row in result["grid"])
    assert [row["seed"] for row in result["cli"]] == [0, 1] and [row["seed"] for row in result["handwritten"]] == [0, 1]
    shapes = result["shapes"]
    assert [row["schedule_options"] for row in shapes] == [dict(shape) for shape in _load_onecycle_recipe().SHAPES]
    assert all((row["weight_decay"], row["label_smoothing"]) == (chosen["weight_decay"], chosen["label_smoothing"])
               for row in shapes)
    assert shapes[0]["run_id"] in {row["run_id"] for row in result["grid"]}  # the chosen pair's run, not trained again
    module = _load_onecycle_recipe()
    # Each later step starts from the run the step before chose (not trained again) and changes one factor.
    shape = module.choose(shapes)
    momenta = result["momenta"]
    assert momenta[0]["run_id"] == shape["run_id"]
    assert [(row["nesterov"], row["schedule_options"]) for row in momenta] == [
        (nesterov, {**shape["schedule_options"], **options}) for nesterov, options in module.MOMENTA]
    momentum = module.choose(momenta)
    falls = result["falls"]
    assert falls[0]["run_id"] == momentum["run_id"]
    assert [(row["nesterov"], row["schedule_options"]) for row in falls] == [
        (momentum["nesterov"], {**momentum["schedule_options"], **options}) for options in module.FALLS]
    fall = module.choose(falls)
    assert fall["final_val_accuracy"] == max(row["final_val_accuracy"] for row in falls)
    peaks = result["peaks"]
    assert [row["peak_factor"] for row in peaks] == list(module.PEAK_FACTORS)
    assert peaks[0]["run_id"] == fall["run_id"]  # factor 1 is the fall step's chosen run, not trained again
    for row in peaks[1:]:
        assert row["peak_learning_rate"] == pytest.approx(fall["peak_learning_rate"] * row["peak_factor"])
        assert row["run_id"] != fall["run_id"]
        assert (row["nesterov"], row["schedule_options"]) == (fall["nesterov"], fall["schedule_options"])
    best_peak = module.choose(peaks)
    assert chosen["peak_factor"] == best_peak["peak_factor"]
    # The rise step: each arm on both comparison seeds at the chosen factor; seed 0 of the first arm is the
    # peak step's chosen run (not trained again); the choice is the best mean validation over the seeds.
    rises = result["rises"]
    assert [row["rise"] for row in rises] == [dict(rise) for rise in module.RISES]
    for row in rises:
        assert [run["seed"] for run in row["runs"]] == [0, 1]
        assert all(run["schedule_options"] == {**fall["schedule_options"], **row["rise"]} for run in row["runs"])
        assert all(run["peak_learning_rate"] == pytest.approx(0.05 * best_peak["peak_factor"]) for run in row["runs"])
        assert row["mean_final_val_accuracy"] == pytest.approx(
            sum(run["final_val_accuracy"] for run in row["runs"]) / 2)
    assert rises[0]["runs"][0]["run_id"] == best_peak["run_id"]
    rise = module.choose_over_seeds(rises)
    assert (chosen["schedule_options"], chosen["nesterov"]) == (rise["schedule_options"], fall["nesterov"])
    default = result["default_recipe"]
    assert set(default) == set(chosen) and result["default_is_the_choice"] == (default == chosen)
    assert (result["cli"][0]["weight_decay"], result["cli"][0]["label_smoothing"], result["cli"][0]["nesterov"],
            result["cli"][0]["schedule_options"]) == (
        default["weight_decay"], default["label_smoothing"], default["nesterov"], default["schedule_options"])
    interval = result["cli_minus_handwritten"]
    assert interval["low"] <= interval["estimate"] <= interval["high"] and interval["seeds"] == 2
    assert result["verdict"]
    again = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["cli_minus_handwritten"] == interval
    assert "training:" not in again.stderr and "handwritten_resnet20.py --epochs" not in again.stderr
