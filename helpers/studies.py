"""The experiments of each notebook, as engine configurations.

Each ``*_arms(profile, data_dir)`` function returns an ordered mapping from a
legend label to an :class:`~helpers.experiment.ExperimentConfig`. Arms of one
comparison are built from one base configuration with ``replace`` or
``with_model_options``, so they differ in exactly the factor named by the
label, and they share the data split, the budget and the seed. The profile
(``helpers.profiles``) sets the scale; the design never changes with it.

:func:`run_arms` runs them through the engine (cached: a second call loads
the records without training) and returns the records under the same labels.
"""

from __future__ import annotations

from typing import Mapping

from helpers.experiment import ExperimentConfig
from helpers.profiles import Profile

# Weight decay of kuangliu/pytorch-cifar and weiaicunzai/pytorch-cifar100
# (5e-4); He et al. used 1e-4 with 64k iterations. The larger value suits the
# short budgets of the reduced profiles and is the one the ResNet-18 recipes use.
WEIGHT_DECAY = 5e-4


# The published SGD rates are for batch 128. A profile with another batch
# scales them linearly (Goyal et al. 2017), so the quick profile's smaller
# batches (more steps on a small subset) keep the same rate per image.
REFERENCE_BATCH_SIZE = 128


def scaled_rate(profile: Profile, learning_rate: float) -> float:
    """An SGD rate given for batch 128, scaled to the profile's batch.

    Used in: 01_vgg_gradients through 07_cifar100
    """
    return learning_rate * profile.batch_size / REFERENCE_BATCH_SIZE


def base_config(profile: Profile, notebook: str, data_dir=None, **fields) -> ExperimentConfig:
    """The profile's scale for one notebook: sizes, batch, epochs, first seed.

    The SGD rate defaults to He et al.'s 0.1 per 128 images, scaled to the
    profile's batch.

    Used in: 01_vgg_gradients through 07_cifar100
    """
    values = dict(
        learning_rate=scaled_rate(profile, 0.1),
        dataset="cifar10",
        data_dir=None if data_dir is None else str(data_dir),
        train_size=profile.train_size,
        validation_size=profile.validation_size,
        test_size=profile.test_size,
        batch_size=profile.batch_size,
        # Per-layer gradient norms are plotted in 01 only; elsewhere they
        # would cost a traced function per run for nothing shown.
        record_gradient_norms=notebook[:2] == "01",
        num_epochs=profile.epochs_for(notebook),
        seed=profile.seeds[0],
        weight_decay=WEIGHT_DECAY,
    )
    values.update(fields)
    return ExperimentConfig(**values)


def with_seeds(arms: Mapping[str, ExperimentConfig], profile: Profile) -> dict[str, ExperimentConfig]:
    """Repeats every arm over the profile's seeds ("label" -> "label [seed 1]").

    Used in: every notebook at the full profile
    """
    repeated = {}
    for label, config in arms.items():
        for seed in profile.seeds:
            key = label if seed == profile.seeds[0] else f"{label} [seed {seed}]"
            repeated[key] = config.replace(seed=seed, name=key)
    return repeated


def _named(arms: dict[str, ExperimentConfig]) -> dict[str, ExperimentConfig]:
    return {label: config.replace(name=label) for label, config in arms.items()}


def vgg_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """VGG-19 without batch norm as the student trained it, then the fixes.

    The baseline is VGG-19 with no batch norm and Keras' default (Glorot
    uniform) initialisation under SGD. Arms: a high rate (0.05 per 128
    images) and a lower one (0.01); Adam at 1e-3 (what the student probably used); then, at the
    lower SGD rate and the same budget, He initialisation alone, and batch
    norm alone. Batch norm is also run at the high rate, where it matters.

    Used in: 01_vgg_gradients
    """
    base = base_config(profile, "01", data_dir, model="vgg19", schedule="constant",
                       learning_rate=scaled_rate(profile, 0.01),
                       model_options={"batch_norm": False, "kernel_initializer": "glorot_uniform",
                                      "width_multiplier": profile.width})
    high = scaled_rate(profile, 0.05)
    return _named({
        "no BN, Glorot, SGD high rate": base.replace(learning_rate=high),
        "no BN, Glorot, SGD low rate": base,
        "no BN, Glorot, Adam 1e-3": base.replace(optimizer="adam", learning_rate=1e-3,
                                                 weight_decay_mode="decoupled", weight_decay=1e-4),
        "no BN, He, SGD low rate": base.with_model_options(kernel_initializer="he_normal"),
        "BN, Glorot, SGD low rate": base.with_model_options(batch_norm=True),
        "BN, Glorot, SGD high rate": base.with_model_options(batch_norm=True).replace(learning_rate=high),
    })


def schedule_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """ResNet-20, one budget, four schedules: constant, step, plateau, cosine.

    Plateau uses the student's factor 0.1; its patience is 10 epochs at full
    scale and scaled to the budget below it (10 of 160 epochs is 1/16).

    Used in: 02_lr_schedules
    """
    base = base_config(profile, "02", data_dir, model="resnet20")
    patience = max(1, round(base.num_epochs / 16))
    return _named({
        "constant": base.replace(schedule="constant"),
        "step /10 at 50%, 75%": base.replace(schedule="step"),
        f"plateau x0.1, patience {patience}": base.replace(
            schedule="plateau", schedule_options={"factor": 0.1, "patience": patience}),
        "cosine + warm-up": base.replace(schedule="cosine"),
    })


def steps_per_epoch(config: ExperimentConfig) -> int:
    """Update steps per epoch that ``config`` will train, without loading data.

    The engine trains ``train_size`` images (all of the official training
    set less the validation split when ``train_size`` is None) in whole
    batches.

    Used in: 06_sparse_gates
    """
    from helpers.data import DATASETS

    train = config.train_size
    if train is None:
        train = DATASETS[config.dataset].official_train_size - config.validation_size
    return max(1, train // config.batch_size)


def degradation_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """Plain vs residual at a shallow and a deep depth (He et al.'s Figure 1/6).

    Used in: 03_resnet_depth
    """
    base = base_config(profile, "03", data_dir, model="resnet20", schedule="step")
    arms = {}
    for depth in profile.degradation_depths:
        arms[f"plain-{depth}"] = base.replace(model=f"plain{depth}")
        arms[f"ResNet-{depth}"] = base.replace(model=f"resnet{depth}")
    return _named(arms)


def depth_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """CIFAR ResNets of the profile's depths, identical recipe.

    Shares configurations (hence cached runs) with :func:`degradation_arms`.

    Used in: 03_resnet_depth
    """
    base = base_config(profile, "03", data_dir, model="resnet20", schedule="step")
    return _named({f"ResNet-{depth}": base.replace(model=f"resnet{depth}") for depth in profile.depths})


def stem_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """ResNet-18 and ResNet-50 with the CIFAR stem against the ImageNet stem.

    The ImageNet stem (7x7 stride 2 and max-pool) shrinks 32x32 inputs to 8x8
    before the first block: the likely reason the student's ResNet-50 got 75%.

    Used in: 03_resnet_depth
    """
    base = base_config(profile, "03", data_dir, model="resnet18", schedule="step",
                       model_options={"width_multiplier": profile.width})
    arms = {}
    for model in ("resnet18", "resnet50"):
        for stem in ("cifar", "imagenet"):
            arms[f"{model} {stem} stem"] = base.replace(model=model).with_model_options(stem=stem)
    return _named(arms)


def warmup_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """ResNet-110 with and without He et al.'s warm-up (0.01 for 400 steps).

    Only at the full profile: at reduced scale ResNet-110 costs too much per
    epoch on a CPU.

    Used in: 03_resnet_depth
    """
    if profile.name != "full":
        return {}
    base = base_config(profile, "03", data_dir, model="resnet110", schedule="step")
    return _named({
        "ResNet-110, no warm-up": base,
        "ResNet-110, warm-up 0.01 for 400 steps": base.with_schedule_options(
            warmup_steps=400, warmup_learning_rate=0.01),
    })


def dropout_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """ResNet-18 with ReduceLROnPlateau: dropout against augmentation + weight decay.

    Arms: nothing (no augmentation, no weight decay, no dropout); the
    student's dropout alone (0.5 in blocks, 0.3 before the classifier);
    augmentation and weight decay alone; and each dropout setting on top of
    augmentation and weight decay.

    Used in: 04_dropout
    """
    base = base_config(profile, "04", data_dir, model="resnet18", schedule="plateau",
                       model_options={"width_multiplier": profile.width})
    patience = max(1, round(base.num_epochs / 20))
    base = base.replace(schedule_options={"factor": 0.1, "patience": patience})
    bare = base.replace(augment=False, weight_decay=0.0)
    student = {"block_dropout": 0.5, "classifier_dropout": 0.3}
    return _named({
        "no regularisation": bare,
        "student dropout only": bare.with_model_options(**student),
        "augmentation + weight decay": base,
        "aug + wd + classifier dropout 0.3": base.with_model_options(classifier_dropout=0.3),
        "aug + wd + student dropout": base.with_model_options(**student),
    })


def cyclical_base(profile: Profile, data_dir=None) -> ExperimentConfig:
    """The network and recipe of 05_cyclical_lr (ResNet-56 at full scale, Smith's).

    Used in: 05_cyclical_lr
    """
    model = "resnet56" if profile.name == "full" else "resnet20"
    return base_config(profile, "05", data_dir, model=model, weight_decay=1e-4)


def cyclical_arms(profile: Profile, base_learning_rate: float, max_learning_rate: float,
                  data_dir=None) -> dict[str, ExperimentConfig]:
    """Step decay vs triangular CLR vs one-cycle at one budget, and one-cycle at a quarter.

    The rate bounds come from the LR range test.

    Used in: 05_cyclical_lr
    """
    base = cyclical_base(profile, data_dir)
    short = max(1, base.num_epochs // 4)
    return _named({
        f"step decay from {max_learning_rate:.2g}": base.replace(
            schedule="step", learning_rate=max_learning_rate),
        "triangular CLR": base.replace(
            schedule="clr", learning_rate=max_learning_rate,
            schedule_options={"base_learning_rate": base_learning_rate}),
        "one-cycle": base.replace(schedule="onecycle", learning_rate=max_learning_rate),
        f"one-cycle, {short} epochs": base.replace(schedule="onecycle", learning_rate=max_learning_rate,
                                                   num_epochs=short),
    })


def gate_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """epsilon-ResNet at the profile's depth over a range of epsilon, plus a shallow net.

    Used in: 06_sparse_gates
    """
    base = base_config(profile, "06", data_dir, model=f"eps_resnet{profile.epsilon_depth}",
                       schedule="step", weight_decay=2e-4)
    arms = {f"depth {profile.epsilon_depth}, eps {eps:g}": base.with_model_options(epsilon=eps)
            for eps in profile.epsilons}
    shallow = max(profile.epsilons)
    if profile.epsilon_depth != 20:
        arms[f"depth 20, eps {shallow:g}"] = base.replace(model="eps_resnet20").with_model_options(epsilon=shallow)
    return _named(arms)


def cifar100_arms(profile: Profile, data_dir=None) -> dict[str, ExperimentConfig]:
    """CIFAR-100: the profile's models, and ResNet-18 with the student's dropout.

    Used in: 07_cifar100
    """
    base = base_config(profile, "07", data_dir, model="resnet18", dataset="cifar100",
                       schedule="cosine", train_size=None if profile.train_size is None
                       else profile.train_size * 2)
    arms = {}
    for model in profile.cifar100_models:
        options = {"width_multiplier": profile.width} if model in ("resnet18", "resnet50") else {}
        arms[model] = base.replace(model=model, model_options=options)
        if model == "resnet18":
            arms["resnet18 + dropout 0.5 after add"] = arms[model].with_model_options(post_add_dropout=0.5)
    return _named(arms)


def run_arms(arms: Mapping[str, ExperimentConfig], runs_dir=None, progress=True) -> dict:
    """Runs each arm through the engine (cached, resumable) in order.

    Returns:
        {label: RunRecord}, in the order given.

    Used in: 01_vgg_gradients through 07_cifar100
    """
    from helpers.engine import run

    records = {}
    for index, (label, config) in enumerate(arms.items(), start=1):
        if progress:
            import sys

            print(f"[{index}/{len(arms)}] {label}", file=sys.stderr, flush=True)
        records[label] = run(config, runs_dir=runs_dir, progress=progress)
    return records


def describe_arms(arms: Mapping[str, ExperimentConfig]):
    """A table of the configuration fields that differ between arms.

    Shows at a glance that a comparison changes one factor (or names which).

    Used in: 01_vgg_gradients through 07_cifar100
    """
    import pandas as pd

    flat = {}
    for label, config in arms.items():
        values = config.id_fields()
        row = {key: value for key, value in values.items() if key not in ("model_options", "schedule_options")}
        row.update({f"model.{k}": v for k, v in config.model_options.items()})
        row.update({f"schedule.{k}": v for k, v in config.schedule_options.items()})
        flat[label] = row
    columns = sorted({key for row in flat.values() for key in row})
    varying = [c for c in columns if len({repr(row.get(c)) for row in flat.values()}) > 1]
    shared = {c: next(iter(flat.values())).get(c) for c in columns if c not in varying}
    frame = pd.DataFrame({label: {c: row.get(c, "-") for c in varying} for label, row in flat.items()}).T
    frame.attrs["shared"] = shared
    return frame


def _range_test_path(config: ExperimentConfig, num_iterations: int, runs_dir=None):
    from pathlib import Path

    from helpers import config as project_config

    directory = Path(runs_dir) if runs_dir is not None else project_config.RUNS_DIR
    return directory / "lr_find" / f"{config.config_hash}-{num_iterations}.json"


def learning_rate_range_test(config: ExperimentConfig, num_iterations: int = 100,
                             runs_dir=None, progress=True, cached_only: bool = False):
    """The LR range test for ``config``, cached like a run.

    The result is stored as JSON under ``<runs_dir>/lr_find/`` keyed by the
    configuration's hash and the iteration count, so re-rendering the report
    never repeats it.

    Args:
        cached_only: Return None instead of running a test that is not cached
            (the summary table reads results, it never trains).

    Returns:
        An object with ``learning_rates``, ``losses``, ``smoothed_losses``,
        ``suggested_base_learning_rate`` and ``suggested_max_learning_rate``.

    Used in: 05_cyclical_lr, 08_summary
    """
    import json
    import types

    from helpers.records import write_json_atomic

    cache = _range_test_path(config, num_iterations, runs_dir)
    if cache.is_file():
        payload = json.loads(cache.read_text())
    elif cached_only:
        return None
    else:
        from helpers.engine import find_learning_rate

        result = find_learning_rate(config, num_iterations=num_iterations, progress=progress)
        payload = result.to_dict()
        payload["config"] = config.to_dict()
        write_json_atomic(cache, payload)
    return types.SimpleNamespace(**payload)
