"""Committed records: looked up by configuration, never trained, missing ones named."""

from __future__ import annotations

import json

import pytest

from helpers import committed, profiles, studies
from helpers.records import write_json_atomic
from tests.test_findings import make_record

SMOKE = profiles.get_profile("smoke")


def _commit(folder, config, accuracy=0.5, run_id=None, status="completed"):
    record = make_record(config, accuracy, seed=config.seed, status=status)
    record.run_id = run_id or f"{config.model}-{config.dataset}-{config.config_hash[:12]}"
    record.save(folder / record.run_id / "record.json")
    return record


@pytest.fixture
def folder(tmp_path, monkeypatch):
    path = tmp_path / "records" / "smoke"
    path.mkdir(parents=True)
    monkeypatch.setenv("CIFAR_LAB_RECORDS_DIR", str(path))
    committed._ACTIVE.clear()
    yield path
    committed._ACTIVE.clear()


def test_run_study_reads_committed_records_by_configuration_whatever_their_run_id(folder, tmp_path):
    arms = studies.schedule_arms(SMOKE)
    for arm in arms.values():
        for seed in SMOKE.seeds:
            # A run id from another copy of the data: only the configuration must match.
            _commit(folder, arm.seeded(seed), run_id=f"resnet20-cifar10-other{seed}{len(arm.key)}{arm.label[:3]}")
    results = studies.run_study(arms, SMOKE, runs_dir=tmp_path / "empty", progress=False)
    assert all(result.n == len(SMOKE.seeds) for result in results.values())
    assert not (tmp_path / "empty").exists()  # nothing trained, nothing written


def test_a_missing_committed_run_is_named_and_never_trained(folder, tmp_path):
    arms = studies.schedule_arms(SMOKE)
    constant = arms[("schedule", "constant")]
    _commit(folder, constant.seeded(0))
    with pytest.raises(committed.MissingRunError) as raised:
        studies.run_study(arms, SMOKE, runs_dir=tmp_path / "empty", progress=False)
    message = str(raised.value)
    assert str(folder) in message and "step /10 at 50%, 75%" in message and "--render-only trains nothing" in message
    assert "python -m helpers records --profile <profile> --export" in message
    # The summary's cache-only read leaves the gap as None instead.
    results = studies.run_study(arms, SMOKE, progress=False, cached_only=True)
    assert results[("schedule", "constant")].n == 1 and results[("schedule", "step")].n == 0


def test_unfinished_and_duplicate_committed_records(folder):
    config = studies.schedule_arms(SMOKE)[("schedule", "cosine")].seeded(0)
    _commit(folder, config, run_id="resnet20-cifar10-interrupted", status="interrupted")
    assert committed.RecordFolder(folder).record_for(config) is None
    _commit(folder, config, run_id="resnet20-cifar10-copyA")
    assert committed.RecordFolder(folder).record_for(config).run_id == "resnet20-cifar10-copyA"
    _commit(folder, config, run_id="resnet20-cifar10-copyB")
    with pytest.raises(ValueError, match="2 committed results share the configuration"):
        committed.RecordFolder(folder).record_for(config)


def test_a_damaged_committed_record_names_its_file(folder):
    (folder / "broken").mkdir()
    (folder / "broken" / "record.json").write_text("{not json")
    config = studies.schedule_arms(SMOKE)[("schedule", "cosine")].seeded(0)
    with pytest.raises(ValueError, match="broken/record.json: unreadable committed record"):
        committed.RecordFolder(folder).record_for(config)


def test_range_test_read_from_committed_records(folder):
    base = studies.cyclical_base(SMOKE)
    payload = {"learning_rates": [0.01, 0.1, 1.0], "losses": [2.3, 1.9, 3.0], "smoothed_losses": [2.3, 2.0, 2.5],
               "suggested_base_learning_rate": 0.025, "suggested_max_learning_rate": 0.1,
               "config": base.to_dict()}
    write_json_atomic(folder / "lr_find" / f"resnet20-cifar10-elsewhere-{SMOKE.lr_find_iterations}.json", payload)
    result = studies.learning_rate_range_test(base, SMOKE.lr_find_iterations)
    assert result.suggested_max_learning_rate == 0.1
    assert studies.range_test_reading(result).max_learning_rate == 0.1
    with pytest.raises(committed.MissingRunError, match="no range test"):
        studies.learning_rate_range_test(base, SMOKE.lr_find_iterations + 1)
    assert studies.learning_rate_range_test(base, SMOKE.lr_find_iterations + 1, cached_only=True) is None


def test_render_only_without_committed_records_says_what_to_do(tmp_path, monkeypatch):
    from helpers import config, report

    monkeypatch.setattr(config, "RECORDS_DIR", tmp_path / "records")
    with pytest.raises(ValueError, match="No committed records for profile 'smoke'.*python -m helpers report "
                                         "--profile smoke"):
        report.run_report("smoke", render_only=True, pdf=False, output_dir=tmp_path / "out")


def test_records_command_without_data_is_one_line(tmp_path, capsys, monkeypatch):
    """Without data no run id can be computed: the command says so in one line."""
    from helpers import cli

    monkeypatch.setenv("CIFAR_DATA_DIR", str(tmp_path / "nowhere"))
    status = cli.main(["records", "--profile", "smoke", "--runs-dir", str(tmp_path / "runs"),
                       "--data-dir", str(tmp_path / "nowhere")])
    assert status == 2
    assert "error:" in capsys.readouterr().err


def test_series_lists_every_run_once_and_sums_the_measured_budget(folder):
    from helpers import series

    base = studies.cyclical_base(SMOKE)
    write_json_atomic(folder / "lr_find" / f"x-{SMOKE.lr_find_iterations}.json", {
        "learning_rates": [0.01, 0.1, 1.0], "losses": [2.3, 1.9, 3.0], "smoothed_losses": [2.3, 2.0, 2.1],
        "suggested_base_learning_rate": 0.025, "suggested_max_learning_rate": 0.1, "config": base.to_dict()})
    step = studies.schedule_arms(SMOKE)[("schedule", "step")].seeded(0)
    record = _commit(folder, step)
    record.wall_seconds = 60.0
    record.environment = {"hardware": {"instruction_set": {"widest": "AVX-512"}}}
    record.save(record.path)
    runs, range_test = series.series_runs(SMOKE)
    assert range_test is not None
    hashes = [run.config.config_hash for run in runs]
    assert len(hashes) == len(set(hashes))
    # 02's step decay is 03's ResNet-20 and 05's step decay: listed once, under 02.
    shared = [run for run in runs if run.config.config_hash == step.config_hash]
    assert [run.notebook for run in shared] == ["02"] and shared[0].done
    five = [run for run in runs if run.notebook == "05"]
    assert {run.label for run in five} >= {"one-cycle, high peak 1"}
    table = series.budget(runs)
    assert table["02"]["finished"] == 1 and table["02"]["wall_seconds"] == 60.0
    assert table["02"]["instruction_sets"] == ["AVX-512"]
    assert sum(row["runs"] for row in table.values()) == len(runs)
    json.dumps(table)


def test_a_committed_record_measured_on_the_first_images_is_refused_with_what_to_do(folder):
    config = studies.schedule_arms(SMOKE)[("schedule", "cosine")].seeded(0)
    record = make_record(config, 0.5, seed=0)
    record.run_id = "resnet20-cifar10-old"
    record.measurement_version = 1
    record.diagnostics = {"gradient_norms": {"conv1": [0.1, 0.2]}, "gradient_norm_epochs": [0, 1]}
    record.save(folder / record.run_id / "record.json")
    with pytest.raises(committed.MissingRunError) as raised:
        committed.RecordFolder(folder).record_for(config)
    message = str(raised.value)
    assert "resnet20-cifar10-old/record.json" in message and "gradient norms were measured" in message
    assert "python -m helpers report --profile <profile>" in message and "run id stays the same" in message
    # Without measurements on training images, an old record is read as it is.
    record.diagnostics = {}
    record.save(folder / record.run_id / "record.json")
    assert committed.RecordFolder(folder).record_for(config).measurement_version == 1
