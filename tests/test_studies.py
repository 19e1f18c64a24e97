"""helpers.studies: arms keyed by their factors, run for every seed of the profile."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from helpers import studies
from helpers.experiment import ExperimentConfig
from helpers.profiles import PROFILES, get_profile
from helpers.records import RunRecord, labels_digest, pack_bits

ARM_BUILDERS = {
    "vgg": studies.vgg_arms, "schedule": studies.schedule_arms, "degradation": studies.degradation_arms,
    "depth": studies.depth_arms, "stem": studies.stem_arms, "warmup": studies.warmup_arms,
    "dropout": studies.dropout_arms, "gate": studies.gate_arms, "cifar100": studies.cifar100_arms,
    "cyclical": lambda profile: studies.cyclical_arms(profile, 0.01, 0.1),
}


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
@pytest.mark.parametrize("study", sorted(ARM_BUILDERS))
def test_arms_are_keyed_by_their_factors_and_named_by_their_labels(profile_name, study):
    profile = get_profile(profile_name)
    arms = ARM_BUILDERS[study](profile)
    for key, arm in arms.items():
        assert isinstance(key, tuple) and key == arm.key
        assert arm.config.name == arm.label
        assert arm.config.seed == profile.seeds[0]
    assert len({arm.config.config_hash for arm in arms.values()}) == len(arms)  # no two arms alike


@pytest.mark.parametrize("profile_name", sorted(PROFILES))
@pytest.mark.parametrize("study", sorted(ARM_BUILDERS))
def test_every_arm_of_every_profile_names_a_registered_model_and_options(profile_name, study):
    # The engine refuses an unknown model at the first run; a profile must not find that out hours in.
    from helpers.engine import check_names

    for arm in ARM_BUILDERS[study](get_profile(profile_name)).values():
        check_names(arm.config)


def test_keys_name_the_factor_the_config_holds():
    profile = get_profile("quick")
    for (kind, depth), arm in studies.degradation_arms(profile).items():
        assert arm.config.model == f"{'plain' if kind == 'plain' else 'resnet'}{depth}"
    for (depth, epsilon), arm in studies.gate_arms(profile).items():
        assert arm.config.model == f"eps_resnet{depth}"
        assert arm.config.model_options["epsilon"] == epsilon
    for (model, stem), arm in studies.stem_arms(profile).items():
        assert arm.config.model == model and arm.config.model_options["stem"] == stem
    vgg = studies.vgg_arms(profile)
    assert vgg[("bn", "glorot", "sgd_high")].config.model_options["batch_norm"] is True
    assert vgg[("no_bn", "he", "sgd_low")].config.model_options["kernel_initializer"] == "he_normal"


def test_duplicate_keys_are_refused():
    config = ExperimentConfig(model="resnet20")
    with pytest.raises(ValueError, match="share the key \\('a',\\)"):
        studies._arms(studies.Arm(("a",), "one", config), studies.Arm(("a",), "two", config))


def _record(config, accuracy, correct):
    return RunRecord(run_id=f"r{config.seed}-{config.config_hash}", status="completed", config=config,
                     history={"epoch": [1, 2], "val_accuracy": [accuracy - 0.1, accuracy],
                              "epoch_seconds": [2.0, 4.0]},
                     test={"accuracy": accuracy},
                     test_predictions={"images": len(correct), "labels_digest": labels_digest(np.zeros(len(correct))),
                                       "accuracy": pack_bits(correct)})


def test_run_study_runs_every_arm_for_every_seed(monkeypatch):
    from helpers import engine

    profile = get_profile("quick")
    assert len(profile.seeds) >= 2
    calls = []

    def fake_run(config, runs_dir=None, progress=True):
        calls.append((config.name, config.seed))
        return _record(config, 0.5 + 0.1 * config.seed, np.arange(10) % 2)

    monkeypatch.setattr(engine, "run", fake_run)
    arms = studies.schedule_arms(profile)
    results = studies.run_study(arms, profile, progress=False)
    assert list(results) == list(arms)
    assert calls == [(arm.label, seed) for arm in arms.values() for seed in profile.seeds]
    result = results[("schedule", "cosine")]
    assert result.n == len(profile.seeds) and result.seeds == profile.seeds
    assert [r.config.seed for r in result.records] == list(profile.seeds)
    assert result.test_values() == pytest.approx([0.5 + 0.1 * seed for seed in profile.seeds])
    assert result.best_values() == result.test_values()
    assert result.seconds_per_epoch() == pytest.approx(3.0)
    assert result.test_correct().shape == (len(profile.seeds), 10)


def test_cached_only_trains_nothing_and_leaves_gaps(monkeypatch):
    from helpers import engine

    profile = get_profile("quick")
    monkeypatch.setattr(engine, "run", lambda *a, **k: pytest.fail("cached_only must not train"))
    monkeypatch.setattr(studies, "cached_record",
                        lambda config, runs_dir=None: _record(config, 0.6, np.ones(4)) if config.seed == 0 else None)
    results = studies.run_study(studies.schedule_arms(profile), profile, cached_only=True)
    for result in results.values():
        assert result.records[1] is None and result.n == 1 and result.test_values() == [0.6]


def test_test_correct_refuses_seeds_scored_on_other_images():
    config = ExperimentConfig(model="resnet20")
    first = _record(config, 0.5, np.ones(4))
    second = _record(config.replace(seed=1), 0.5, np.ones(4))
    second.test_predictions["labels_digest"] = "other"
    result = studies.ArmResult(studies.Arm(("a",), "a", config), (0, 1), [first, second])
    with pytest.raises(ValueError, match="scored on different test images"):
        result.test_correct()
    second.test_predictions = {}
    assert result.test_correct() is None  # a record from before per-image scores


def test_best_by_validation_chooses_on_validation_only():
    config = ExperimentConfig(model="resnet20")
    good = studies.ArmResult(studies.Arm(("good",), "good", config), (0,), [_record(config, 0.7, np.ones(2))])
    bad = _record(config.replace(seed=1), 0.3, np.ones(2))
    bad.test["accuracy"] = 0.99  # a high test score must not sway the choice
    worse = studies.ArmResult(studies.Arm(("bad",), "bad", config), (1,), [bad])
    assert studies.best_by_validation({("bad",): worse, ("good",): good}) is good
    nothing = studies.ArmResult(studies.Arm(("x",), "x", config), (0,), [])
    with pytest.raises(ValueError, match="No arm has a finite 'val_accuracy'"):
        studies.best_by_validation({("x",): nothing})
    assert math.isnan(nothing.seconds_per_epoch())


def _range_result(rates=(0.01, 0.1)):
    return {"learning_rates": [0.001, 0.01, 0.1], "losses": [2.3, 2.0, 9.0], "smoothed_losses": [2.3, 2.1, 5.0],
            "suggested_base_learning_rate": rates[0], "suggested_max_learning_rate": rates[1]}


def test_range_test_cache_is_keyed_by_the_data_and_survives_damage(tmp_path, monkeypatch, capsys):
    import types

    from helpers import engine, runs

    config = ExperimentConfig(model="resnet20", train_size=256, validation_size=50)
    calls = []

    def fake_find(config, num_iterations, progress):
        calls.append(num_iterations)
        return types.SimpleNamespace(to_dict=lambda: _range_result())

    monkeypatch.setattr(engine, "find_learning_rate", fake_find, raising=False)
    monkeypatch.setattr(runs, "resolve_run_id", lambda config, data=None, runs_dir=None: "resnet20-cifar10-aaaa")
    first = studies.learning_rate_range_test(config, 10, runs_dir=tmp_path, progress=False)
    path = tmp_path / "lr_find" / "resnet20-cifar10-aaaa-10.json"
    assert path.is_file() and first.suggested_max_learning_rate == 0.1 and calls == [10]
    assert studies.learning_rate_range_test(config, 10, runs_dir=tmp_path).suggested_base_learning_rate == 0.01
    assert calls == [10]  # served from the cache
    # Other data (another run id): another cache entry.
    monkeypatch.setattr(runs, "resolve_run_id", lambda config, data=None, runs_dir=None: "resnet20-cifar10-bbbb")
    assert studies.learning_rate_range_test(config, 10, runs_dir=tmp_path, cached_only=True) is None
    monkeypatch.setattr(runs, "resolve_run_id", lambda config, data=None, runs_dir=None: "resnet20-cifar10-aaaa")
    # A file cut short, then one of the wrong shape: named in one line, then run again.
    for damage in ('{"learning_rates": [0.0', '{"something": 1}'):
        path.write_text(damage)
        assert studies.learning_rate_range_test(config, 10, runs_dir=tmp_path, cached_only=True) is None
        assert f"warning: {path}" in capsys.readouterr().err
        studies.learning_rate_range_test(config, 10, runs_dir=tmp_path, progress=False)
    assert calls == [10, 10, 10]


def test_cached_record_reads_the_engine_cache_and_names_a_damaged_record(tmp_path, monkeypatch, capsys):
    from helpers import runs

    config = ExperimentConfig(model="resnet20")
    monkeypatch.setattr(runs, "resolve_run_id", lambda config, data=None, runs_dir=None: "resnet20-cifar10-aaaa")
    assert studies.cached_record(config, tmp_path) is None  # nothing there
    record = _record(config, 0.5, np.ones(4))
    record.run_id = "resnet20-cifar10-aaaa"
    record.save(tmp_path / "resnet20-cifar10-aaaa" / "record.json")
    assert studies.cached_record(config, tmp_path).test_metric() == 0.5
    (tmp_path / "resnet20-cifar10-aaaa" / "record.json").write_text('{"run_id": "resnet20-cif')
    assert studies.cached_record(config, tmp_path) is None
    assert "damaged run record" in capsys.readouterr().err


def test_a_notebook_may_run_more_seeds_than_the_profile_and_an_arm_its_own():
    from helpers import profiles

    standard = profiles.get_profile("standard")
    assert standard.seeds_for("02") == (0, 1, 2) and standard.seeds_for("02_lr_schedules") == (0, 1, 2)
    assert standard.seeds_for("03") == standard.seeds == (0, 1)
    schedules = studies.schedule_arms(standard)
    assert schedules[("schedule", "plateau")].seeds_in(standard) == (0, 1, 2)
    assert schedules[("schedule", "cosine", "long")].seeds_in(standard) == (0, 1)  # its own: the dearest arm
    # 03 reads 02's shared step-decay run for the profile's two seeds only.
    assert studies.degradation_arms(standard)[("residual", 20)].seeds_in(standard) == (0, 1)
    seen = []

    def fake_run(config, runs_dir=None, progress=True):
        seen.append((config.name, config.seed))
        return None

    import helpers.engine as engine

    original, engine.run = engine.run, fake_run
    try:
        results = studies.run_study(schedules, standard, progress=False)
    finally:
        engine.run = original
    assert results[("schedule", "plateau")].seeds == (0, 1, 2)
    assert results[("schedule", "cosine", "long")].seeds == (0, 1)
    assert len(seen) == 4 * 3 + 2


def test_a_profile_leaves_out_the_arms_it_names_and_only_those():
    from helpers import profiles

    standard, quick = profiles.get_profile("standard"), profiles.get_profile("quick")
    dropped = (("augmentation_weight_decay", "classifier_dropout"), ("none",))
    assert standard.left_out_of("04_dropout") == dropped
    assert all(key not in studies.dropout_arms(standard) and key in studies.dropout_arms(quick) for key in dropped)
    assert set(studies.dropout_arms(quick)) - set(studies.dropout_arms(standard)) == set(dropped)
    trimmed = dataclasses.replace(quick, left_out={"06": ((quick.epsilon_depth, 8.0),)})
    assert (quick.epsilon_depth, 8.0) in studies.gate_arms(quick)
    assert set(studies.gate_arms(quick)) - set(studies.gate_arms(trimmed)) == {(quick.epsilon_depth, 8.0)}
    assert studies.dropout_arms(trimmed).keys() == studies.dropout_arms(quick).keys()


def test_the_stems_train_for_stem_epochs_where_a_profile_sets_them():
    from helpers import profiles

    standard, quick = profiles.get_profile("standard"), profiles.get_profile("quick")
    assert {arm.config.num_epochs for arm in studies.stem_arms(standard).values()} == {standard.stem_epochs} == {2}
    assert {arm.config.num_epochs for arm in studies.degradation_arms(standard).values()} == {4}
    assert quick.stem_epochs is None
    assert {arm.config.num_epochs for arm in studies.stem_arms(quick).values()} == {quick.epochs_for("03")}
