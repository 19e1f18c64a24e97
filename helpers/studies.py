"""The experiments of each notebook, as engine configurations.

Each ``*_arms(profile, data_dir)`` function returns an ordered mapping from
an arm's key (its factors, e.g. ``("plain", 44)``) to an :class:`Arm`: the
key, a display label and an :class:`~helpers.experiment.ExperimentConfig`.
Arms of one comparison are built from one base configuration with
``replace`` or ``with_model_options``, so they differ in exactly the factor
their key names, and they share the data split, the budget and the seeds.
The profile (``helpers.profiles``) sets the scale; the design never changes
with it.

:func:`run_study` runs every arm for every seed of the profile through the
engine (cached: a second call loads the records without training) and
returns an :class:`ArmResult` per key.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

from helpers.experiment import ExperimentConfig
from helpers.profiles import FULL, Profile

# Weight decay of kuangliu/pytorch-cifar and weiaicunzai/pytorch-cifar100
# (5e-4); He et al. used 1e-4 with 64k iterations. The larger value suits the
# short budgets of the reduced profiles and is the one the ResNet-18 recipes use.
WEIGHT_DECAY = 5e-4


# The published SGD rates are for batch 128. A profile with another batch
# scales them linearly (Goyal et al. 2017), so the quick profile's smaller
# batches (more steps on a small subset) keep the same rate per image.
REFERENCE_BATCH_SIZE = 128

# Training images 04_dropout scores in inference mode after every epoch.
TRAIN_EVAL_SIZE = 5000


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


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of a comparison: its factors, a display label, its configuration.

    Attributes:
        key: The arm's factors, e.g. ``("plain", 44)`` or ``("schedule",
            "cosine")``. Findings, plots and the summary look arms up by it;
            never by the label.
        label: For legends and tables only.
        config: The configuration at the profile's first seed; the study
            runs it once per seed (:func:`run_study`).
        seeds: The seeds it runs for (``Profile.seeds_for`` its notebook);
            None: the profile's.
    """

    key: tuple
    label: str
    config: ExperimentConfig
    seeds: tuple[int, ...] | None = None

    def seeds_in(self, profile: Profile) -> tuple[int, ...]:
        """The seeds this arm runs for: its own, else the profile's."""
        return tuple(self.seeds) if self.seeds is not None else tuple(profile.seeds)

    def seeded(self, seed: int) -> ExperimentConfig:
        """The arm's configuration at ``seed`` (everything else unchanged)."""
        return self.config.replace(seed=seed)


@dataclasses.dataclass
class ArmResult:
    """An arm's runs, one per seed of the profile, in the profile's order.

    ``records`` holds None for a seed whose run is not in the cache (only
    when the study was read with ``cached_only=True``).

    Used in: every notebook's Findings and figures, 08_summary
    """

    arm: Arm
    seeds: tuple[int, ...]
    records: list

    @property
    def key(self) -> tuple:
        return self.arm.key

    @property
    def label(self) -> str:
        return self.arm.label

    @property
    def config(self) -> ExperimentConfig:
        return self.arm.config

    @property
    def completed(self) -> list:
        """The records that exist (all of them, unless read cache-only)."""
        return [record for record in self.records if record is not None]

    @property
    def n(self) -> int:
        return len(self.completed)

    def test_values(self, metric: str = "accuracy") -> list[float]:
        """The test ``metric`` of each seed's run (NaN where not finite)."""
        return [record.test_metric(metric) for record in self.completed]

    def best_values(self, metric: str = "val_accuracy") -> list[float]:
        """The best ``metric`` over epochs of each seed's run."""
        return [record.best(metric) if metric in record.history else math.nan for record in self.completed]

    def final_values(self, metric: str) -> list[float]:
        """The last epoch's ``metric`` of each seed's run."""
        return [record.final(metric) if metric in record.history and record.epochs_completed else math.nan
                for record in self.completed]

    def seconds_per_epoch(self) -> float:
        """Mean wall seconds per epoch (training and validation) over seeds and epochs.

        Used in: 03_resnet_depth
        """
        values = [value for record in self.completed if "epoch_seconds" in record.history
                  for value in record.curve("epoch_seconds") if math.isfinite(value)]
        return sum(values) / len(values) if values else math.nan

    def test_correct(self, metric: str = "accuracy"):
        """Per-image test scores [seeds, images], or None if a run has none.

        Raises:
            ValueError: when the seeds' runs were scored on different test images.
        """
        import numpy as np

        rows, digests = [], set()
        for record in self.completed:
            row = record.test_correct(metric)
            if row is None:
                return None
            rows.append(row)
            digests.add(record.test_predictions.get("labels_digest"))
        if not rows:
            return None
        if len(digests) > 1 or len({row.shape for row in rows}) > 1:
            raise ValueError(f"Arm {self.label!r}: its seeds' runs were scored on different test images. "
                             f"Received: {len(digests)} label digests")
        return np.stack(rows)


def _arms(*arms: Arm, seeds: tuple[int, ...] | None = None, left_out: tuple[tuple, ...] = ()) -> dict[tuple, Arm]:
    """Arms keyed by their factors; each configuration named by its label, each
    run for its own seeds if it has them, else ``seeds`` (its notebook's,
    ``Profile.seeds_for``); the keys in ``left_out`` (``Profile.left_out_of``
    its notebook) are dropped."""
    keyed = {}
    for arm in arms:
        if arm.key in left_out:
            continue
        if arm.key in keyed:
            raise ValueError(f"Two arms share the key {arm.key!r}. Received: {arm.label!r} and "
                             f"{keyed[arm.key].label!r}")
        own = arm.seeds if arm.seeds is not None else seeds
        keyed[arm.key] = Arm(arm.key, arm.label, arm.config.replace(name=arm.label),
                             None if own is None else tuple(own))
    return keyed


def vgg_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """VGG-19 without batch norm as the student trained it, then the fixes.

    The baseline is VGG-19 with no batch norm and Keras' default (Glorot
    uniform) initialisation under SGD. Arms: a high rate (0.05 per 128
    images) and a lower one (0.01); Adam at 1e-3 (what the student probably used); then, at the
    lower SGD rate and the same budget, He initialisation alone, and batch
    norm alone. Batch norm is also run at the high rate, where it matters.
    Where the profile sets ``vgg_long_epochs``, batch norm at the high rate
    also runs with cosine decay for that longer budget: the fix trained long
    enough to be set against the student's 70% (what the budget decides).

    Used in: 01_vgg_gradients
    """
    base = base_config(profile, "01", data_dir, model="vgg19", schedule="constant",
                       learning_rate=scaled_rate(profile, 0.01),
                       model_options={"batch_norm": False, "kernel_initializer": "glorot_uniform",
                                      "width_multiplier": profile.width})
    high = scaled_rate(profile, 0.05)
    patience = max(1, round(base.num_epochs / 16))
    long_arm = []
    if profile.vgg_long_epochs > base.num_epochs:
        long_arm.append(Arm(("bn", "glorot", "sgd_high", "long"),
                            f"BN, Glorot, SGD high rate, cosine, {profile.vgg_long_epochs} epochs",
                            base.with_model_options(batch_norm=True).replace(
                                learning_rate=high, schedule="cosine", num_epochs=profile.vgg_long_epochs)))
    return _arms(
        Arm(("no_bn", "glorot", "sgd_high"), "no BN, Glorot, SGD high rate", base.replace(learning_rate=high)),
        Arm(("no_bn", "glorot", "sgd_high", "plateau"), "no BN, Glorot, SGD high rate, plateau x0.1",
            base.replace(learning_rate=high, schedule="plateau",
                         schedule_options={"factor": 0.1, "patience": patience})),
        Arm(("no_bn", "glorot", "sgd_low"), "no BN, Glorot, SGD low rate", base),
        Arm(("no_bn", "glorot", "adam"), "no BN, Glorot, Adam 1e-3",
            base.replace(optimizer="adam", learning_rate=1e-3, weight_decay_mode="decoupled", weight_decay=1e-4)),
        Arm(("no_bn", "he", "sgd_low"), "no BN, He, SGD low rate",
            base.with_model_options(kernel_initializer="he_normal")),
        Arm(("bn", "glorot", "sgd_low"), "BN, Glorot, SGD low rate", base.with_model_options(batch_norm=True)),
        Arm(("bn", "glorot", "sgd_high"), "BN, Glorot, SGD high rate",
            base.with_model_options(batch_norm=True).replace(learning_rate=high)),
        *long_arm,
        seeds=profile.seeds_for("01"), left_out=profile.left_out_of("01"),
    )


def schedule_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """ResNet-20, one budget, four schedules: constant, step, plateau, cosine;
    and cosine at the profile's longer budget (``long_epochs``), to show what
    the budget decides.

    Plateau uses the student's factor 0.1; its patience is 10 epochs at full
    scale and scaled to the budget below it (10 of 160 epochs is 1/16).

    Used in: 02_lr_schedules
    """
    base = base_config(profile, "02", data_dir, model="resnet20")
    patience = max(1, round(base.num_epochs / 16))
    return _arms(
        Arm(("schedule", "constant"), "constant", base.replace(schedule="constant")),
        Arm(("schedule", "step"), "step /10 at 50%, 75%", base.replace(schedule="step")),
        Arm(("schedule", "plateau"), f"plateau x0.1, patience {patience}", base.replace(
            schedule="plateau", schedule_options={"factor": 0.1, "patience": patience})),
        Arm(("schedule", "cosine"), "cosine + warm-up", base.replace(schedule="cosine")),
        # The profile's seeds, not the notebook's: a third seed of the longest
        # arm costs more than it tells (the budget effect is large).
        Arm(("schedule", "cosine", "long"), f"cosine + warm-up, {profile.long_epochs} epochs",
            base.replace(schedule="cosine", num_epochs=profile.long_epochs), seeds=tuple(profile.seeds)),
        seeds=profile.seeds_for("02"), left_out=profile.left_out_of("02"),
    )


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


def degradation_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """Plain vs residual at a shallow and a deep depth (He et al.'s Figure 1/6).

    Used in: 03_resnet_depth
    """
    base = base_config(profile, "03", data_dir, model="resnet20", schedule="step")
    arms = []
    for depth in profile.degradation_depths:
        arms.append(Arm(("plain", depth), f"plain-{depth}", base.replace(model=f"plain{depth}")))
        arms.append(Arm(("residual", depth), f"ResNet-{depth}", base.replace(model=f"resnet{depth}")))
    return _arms(*arms, seeds=profile.seeds_for("03"), left_out=profile.left_out_of("03"))


def depth_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """CIFAR ResNets of the profile's depths, identical recipe.

    Shares configurations (hence cached runs) with :func:`degradation_arms`.

    Used in: 03_resnet_depth
    """
    base = base_config(profile, "03", data_dir, model="resnet20", schedule="step")
    return _arms(*(Arm(("residual", depth), f"ResNet-{depth}", base.replace(model=f"resnet{depth}"))
                   for depth in profile.depths), seeds=profile.seeds_for("03"), left_out=profile.left_out_of("03"))


def stem_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """ResNet-18 and ResNet-50 (the profile's ``stem_models``) with the CIFAR
    stem against the ImageNet stem.

    The ImageNet stem (7x7 stride 2 and max-pool) shrinks 32x32 inputs to 8x8
    before the first block: the likely reason the student's ResNet-50 got 75%.

    Both stems train for the profile's ``stem_epochs`` where set, else the
    notebook's budget.

    Used in: 03_resnet_depth
    """
    base = base_config(profile, "03", data_dir, model="resnet18", schedule="step",
                       model_options={"width_multiplier": profile.width})
    if profile.stem_epochs:
        base = base.replace(num_epochs=profile.stem_epochs)
    return _arms(*(Arm((model, stem), f"{model} {stem} stem", base.replace(model=model).with_model_options(stem=stem))
                   for model in profile.stem_models for stem in ("cifar", "imagenet")),
                 seeds=profile.seeds_for("03"), left_out=profile.left_out_of("03"))


def warmup_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """ResNet-110 with and without He et al.'s warm-up (0.01 for 400 steps).

    Only at the full profile: at reduced scale ResNet-110 costs too much per
    epoch on a CPU.

    Used in: 03_resnet_depth
    """
    if profile.name != FULL:
        return {}
    base = base_config(profile, "03", data_dir, model="resnet110", schedule="step")
    return _arms(
        Arm(("warmup", False), "ResNet-110, no warm-up", base),
        Arm(("warmup", True), "ResNet-110, warm-up 0.01 for 400 steps", base.with_schedule_options(
            warmup_steps=400, warmup_learning_rate=0.01)),
        seeds=profile.seeds_for("03"), left_out=profile.left_out_of("03"),
    )


def dropout_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """ResNet-18 with ReduceLROnPlateau: dropout against augmentation + weight decay.

    Every arm also scores up to 5,000 training images in inference mode
    after each epoch (``train_eval_size``), beside the running training
    accuracy, to explain the student's puzzle.

    Arms: nothing (no augmentation, no weight decay, no dropout); the
    student's dropout alone (0.5 in blocks, 0.3 before the classifier);
    augmentation and weight decay alone; and each dropout setting on top of
    augmentation and weight decay.

    Used in: 04_dropout
    """
    base = base_config(profile, "04", data_dir, model="resnet18", schedule="plateau",
                       model_options={"width_multiplier": profile.width},
                       train_eval_size=min(TRAIN_EVAL_SIZE, profile.train_size or TRAIN_EVAL_SIZE))
    patience = max(1, round(base.num_epochs / 20))
    base = base.replace(schedule_options={"factor": 0.1, "patience": patience})
    bare = base.replace(augment=False, weight_decay=0.0)
    student = {"block_dropout": 0.5, "classifier_dropout": 0.3}
    return _arms(
        Arm(("none",), "no regularisation", bare),
        Arm(("student_dropout",), "student dropout only", bare.with_model_options(**student)),
        Arm(("augmentation_weight_decay",), "augmentation + weight decay", base),
        Arm(("augmentation_weight_decay", "classifier_dropout"), "aug + wd + classifier dropout 0.3",
            base.with_model_options(classifier_dropout=0.3)),
        Arm(("augmentation_weight_decay", "student_dropout"), "aug + wd + student dropout",
            base.with_model_options(**student)),
        seeds=profile.seeds_for("04"), left_out=profile.left_out_of("04"),
    )


def cyclical_base(profile: Profile, data_dir=None) -> ExperimentConfig:
    """The network and recipe of 05_cyclical_lr (ResNet-56 at full scale, as Smith's).

    Everything but the schedule and its rates is the series' ResNet recipe
    (02_lr_schedules'), so 05's step-decay arm is 02's run at the reduced
    profiles, trained once.

    Used in: 05_cyclical_lr, 08_summary (the cyclical rows)
    """
    model = "resnet56" if profile.name == FULL else "resnet20"
    return base_config(profile, "05", data_dir, model=model)


def range_test_reading(range_test):
    """Smith's reading (base, max and high rates) of a range test result or cached payload.

    Read from the stored curve (``helpers.range_reading.read_range_test``),
    so every cached test is read by the same rule.

    Used in: 05_cyclical_lr, 08_summary
    """
    from helpers.range_reading import read_range_test

    return read_range_test(range_test.learning_rates, range_test.smoothed_losses)


def cyclical_arms(profile: Profile, base_learning_rate: float, max_learning_rate: float,
                  data_dir=None, *, high_learning_rate: float | None = None) -> dict[tuple, Arm]:
    """Step decay vs triangular CLR vs one-cycle at one budget; one-cycle at a
    quarter of it; and one-cycle at a high peak (super-convergence).

    Step decay runs at its published rate (He et al.'s 0.1 per 128 images),
    as 02_lr_schedules runs it; CLR and one-cycle take their rates from the
    LR range test read as Smith reads it (:func:`range_test_reading`): CLR
    between the base and the maximum rate, one-cycle peaking at the maximum,
    and the super-convergence arm peaking at the high rate (the edge of the
    range where the loss stays low), at the same budget. Without
    ``high_learning_rate`` that arm is left out.

    Used in: 05_cyclical_lr, 08_summary
    """
    base = cyclical_base(profile, data_dir)
    short = max(1, base.num_epochs // 4)
    step_rate = scaled_rate(profile, 0.1)
    arms = [
        Arm(("schedule", "step"), f"step decay ({step_rate:.2g}, /10 at 50%, 75%)", base.replace(
            schedule="step", learning_rate=step_rate)),
        Arm(("schedule", "clr"), f"triangular CLR {base_learning_rate:.2g}-{max_learning_rate:.2g}", base.replace(
            schedule="clr", learning_rate=max_learning_rate,
            schedule_options={"base_learning_rate": base_learning_rate})),
        Arm(("schedule", "onecycle"), f"one-cycle, peak {max_learning_rate:.2g}",
            base.replace(schedule="onecycle", learning_rate=max_learning_rate)),
        Arm(("schedule", "onecycle_short"), f"one-cycle, {short} epoch{'s' if short != 1 else ''}", base.replace(
            schedule="onecycle", learning_rate=max_learning_rate, num_epochs=short)),
    ]
    if high_learning_rate is not None:
        arms.append(Arm(("schedule", "superconvergence"), f"one-cycle, high peak {high_learning_rate:.2g}",
                        base.replace(schedule="onecycle", learning_rate=high_learning_rate)))
    return _arms(*arms, seeds=profile.seeds_for("05"), left_out=profile.left_out_of("05"))


def gate_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """epsilon-ResNet at the profile's depth over a range of epsilon, plus a shallow net.

    Used in: 06_sparse_gates
    """
    base = base_config(profile, "06", data_dir, model=f"eps_resnet{profile.epsilon_depth}",
                       schedule="step", weight_decay=2e-4)
    arms = [Arm((profile.epsilon_depth, float(eps)), f"depth {profile.epsilon_depth}, eps {eps:g}",
                base.with_model_options(epsilon=eps)) for eps in profile.epsilons]
    shallow = max(profile.epsilons)
    if profile.epsilon_depth != 20:
        arms.append(Arm((20, float(shallow)), f"depth 20, eps {shallow:g}",
                        base.replace(model="eps_resnet20").with_model_options(epsilon=shallow)))
    return _arms(*arms, seeds=profile.seeds_for("06"), left_out=profile.left_out_of("06"))


def left_out_labels(profile: Profile) -> dict[str, tuple[str, ...]]:
    """The display labels of the arms ``profile`` leaves out, keyed by notebook number.

    Each notebook's arms are built as if nothing were left out and the
    left-out keys looked up. 05's rates come from its range test, which is
    not run here: placeholder rates stand in, so a left-out 05 arm whose
    label names its rate would show the placeholder (the standard profile
    leaves out only the short one-cycle, whose label names its epochs).

    Raises:
        ValueError: when a left-out key names no arm of its notebook.

    Used in: helpers.profiles (the profile's banner in every notebook)
    """
    whole = dataclasses.replace(profile, left_out={})
    builders = {
        "01": lambda: vgg_arms(whole),
        "02": lambda: schedule_arms(whole),
        "03": lambda: {**degradation_arms(whole), **depth_arms(whole), **stem_arms(whole), **warmup_arms(whole)},
        "04": lambda: dropout_arms(whole),
        "05": lambda: cyclical_arms(whole, 0.025, 0.1),  # placeholder rates: only the labels are read
        "06": lambda: gate_arms(whole),
        "07": lambda: cifar100_arms(whole),
    }
    labels = {}
    for notebook, keys in sorted(profile.left_out.items()):
        arms = builders[notebook]()
        missing = [key for key in keys if tuple(key) not in arms]
        if missing:
            raise ValueError(f"Profile {profile.name!r} leaves out arms {notebook} does not have: {missing}. "
                             f"Its arms: {sorted(arms, key=repr)}")
        labels[notebook] = tuple(arms[tuple(key)].label for key in keys)
    return labels


def cifar100_arms(profile: Profile, data_dir=None) -> dict[tuple, Arm]:
    """CIFAR-100: the profile's models (CIFAR stem, cosine) and the student's set-ups.

    The student's set-ups: ResNet-18 with dropout 0.5 after each addition,
    and ResNet-50 with the ImageNet stem (as Keras' ResNet50 builds it). The
    CIFAR-stem ResNet-50 runs where the profile lists ``resnet50``; 03
    compares the two stems on CIFAR-10 at every profile. ResNet-110 trains
    for the profile's ``deep_epochs`` where set (it costs about 5.5 ResNet-20
    epochs per epoch).

    Used in: 07_cifar100
    """
    base = base_config(profile, "07", data_dir, model="resnet18", dataset="cifar100",
                       schedule="cosine", train_size=None if profile.train_size is None
                       else profile.train_size * 2)

    def options(model):
        return {"width_multiplier": profile.width} if model in ("resnet18", "resnet50") else {}

    arms = []
    for model in profile.cifar100_models:
        config = base.replace(model=model, model_options=options(model))
        if model == "resnet110" and profile.deep_epochs:
            config = config.replace(num_epochs=profile.deep_epochs)
        epochs = "" if config.num_epochs == base.num_epochs else f", {config.num_epochs} epoch" + (
            "s" if config.num_epochs != 1 else "")
        arms.append(Arm((model,), model + epochs, config))
        if model == "resnet18":
            arms.append(Arm((model, "post_add_dropout"), "resnet18 + dropout 0.5 after add",
                            config.with_model_options(post_add_dropout=0.5)))
    arms.append(Arm(("resnet50", "imagenet"), "resnet50 ImageNet stem",
                    base.replace(model="resnet50", model_options={**options("resnet50"), "stem": "imagenet"})))
    return _arms(*arms, seeds=profile.seeds_for("07"), left_out=profile.left_out_of("07"))


def run_study(arms: Mapping[tuple, Arm], profile: Profile, runs_dir=None, progress=True,
              cached_only: bool = False) -> dict[tuple, ArmResult]:
    """Runs every arm for each of its seeds (its notebook's, else the profile's; cached, resumable).

    Args:
        arms: Arms keyed by their factors (a ``*_arms`` function's result).
        profile: Its ``seeds`` are the seeds every arm runs for.
        runs_dir: The run cache (default ``helpers.config.RUNS_DIR``).
        progress: Print "[3/10] label, seed 1" before each run and let the
            engine show its progress bars.
        cached_only: Train nothing: look each run up in the cache and leave
            None where it is missing (the summary reads results this way).

    With ``CIFAR_LAB_RECORDS_DIR`` set (``report --render-only``), every run
    is read from that folder of committed records by its configuration
    (``helpers.committed``) and nothing is trained; a missing run raises
    ``committed.MissingRunError`` naming it, or is None with ``cached_only``.

    Returns:
        {key: ArmResult}, in the arms' order.

    Used in: 01_vgg_gradients through 07_cifar100, 08_summary
    """
    import sys

    from helpers import committed

    folder = committed.active_folder()
    results = {}
    total = sum(len(arm.seeds_in(profile)) for arm in arms.values())
    index = 0
    for key, arm in arms.items():
        records = []
        for seed in arm.seeds_in(profile):
            index += 1
            config = arm.seeded(seed)
            if folder is not None:
                record = folder.record_for(config)
                if record is None and not cached_only:
                    raise committed.missing_run(folder, arm.label, config)
                records.append(record)
                continue
            if cached_only:
                records.append(cached_record(config, runs_dir))
                continue
            from helpers.engine import run

            if progress:
                print(f"[{index}/{total}] {arm.label}, seed {seed}", file=sys.stderr, flush=True)
            records.append(run(config, runs_dir=runs_dir, progress=progress))
        results[key] = ArmResult(arm=arm, seeds=arm.seeds_in(profile), records=records)
    return results


def best_by_validation(results: Mapping[tuple, ArmResult], metric: str = "val_accuracy") -> ArmResult:
    """The arm whose best ``metric`` (mean over seeds) is highest: a choice made
    on the validation split, never the test split.

    Raises:
        ValueError: when no arm has a finite value.

    Used in: 07_cifar100
    """
    def score(result: ArmResult) -> float:
        values = [value for value in result.best_values(metric) if math.isfinite(value)]
        return sum(values) / len(values) if values else -math.inf

    best = max(results.values(), key=score, default=None)
    if best is None or score(best) == -math.inf:
        raise ValueError(f"No arm has a finite {metric!r}. Received: {[r.label for r in results.values()]}")
    return best


def cached_record(config: ExperimentConfig, runs_dir=None):
    """The finished record of ``config`` from the run cache, or None (trains nothing).

    The engine's own cache lookup: a damaged record is named in one line on
    stderr and counts as missing.

    Used in: 08_summary
    """
    import sys
    from pathlib import Path

    from helpers import committed
    from helpers import config as project_config
    from helpers import runs

    folder = committed.active_folder()
    if folder is not None:
        return folder.record_for(config)
    directory = Path(runs_dir) if runs_dir is not None else project_config.RUNS_DIR
    run_id = runs.resolve_run_id(config, runs_dir=directory)
    return runs.cached_record(runs.run_directory(directory, run_id),
                              lambda message: print(f"warning: {message}", file=sys.stderr))


def describe_arms(arms: Mapping[tuple, Arm]):
    """A table of the configuration fields that differ between arms.

    Shows at a glance that a comparison changes one factor (or names which);
    the fields every arm shares are in ``frame.attrs["shared"]``.

    Used in: 01_vgg_gradients, 02_lr_schedules, 04_dropout, 06_sparse_gates, 07_cifar100
    """
    import pandas as pd

    flat = {}
    for arm in arms.values():
        values = arm.config.id_fields()
        row = {key: value for key, value in values.items()
               if key not in ("model_options", "schedule_options", "seed")}
        row.update({f"model.{k}": v for k, v in arm.config.model_options.items()})
        row.update({f"schedule.{k}": v for k, v in arm.config.schedule_options.items()})
        flat[arm.label] = row
    columns = sorted({key for row in flat.values() for key in row})
    varying = [c for c in columns if len({repr(row.get(c)) for row in flat.values()}) > 1]
    shared = {c: next(iter(flat.values())).get(c) for c in columns if c not in varying}
    frame = pd.DataFrame({label: {c: row.get(c, "-") for c in varying} for label, row in flat.items()}).T
    frame.index.name = "arm"
    frame.attrs["shared"] = shared
    return frame


RANGE_TEST_KEYS = ("learning_rates", "losses", "smoothed_losses", "suggested_base_learning_rate",
                   "suggested_max_learning_rate")


def range_test_path(config: ExperimentConfig, num_iterations: int, runs_dir=None):
    """``<runs_dir>/lr_find/<run id>-<iterations>.json``: keyed like a run, by the
    configuration *and* the data it trains on (the run id hashes both).

    Used in: learning_rate_range_test, helpers.series (export)
    """
    from pathlib import Path

    from helpers import config as project_config
    from helpers.runs import resolve_run_id

    directory = Path(runs_dir) if runs_dir is not None else project_config.RUNS_DIR
    return directory / "lr_find" / f"{resolve_run_id(config, runs_dir=directory)}-{num_iterations}.json"


def _read_range_test(path) -> dict | None:
    """The cached result, or None (with a one-line warning naming the file) when damaged."""
    import json
    import sys

    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        print(f"warning: {path}: unreadable LR range test ({error}); it will be run again.", file=sys.stderr)
        return None
    if not isinstance(payload, dict) or any(key not in payload for key in RANGE_TEST_KEYS):
        print(f"warning: {path}: not an LR range test result (expected keys {', '.join(RANGE_TEST_KEYS)}); "
              "it will be run again.", file=sys.stderr)
        return None
    return payload


def learning_rate_range_test(config: ExperimentConfig, num_iterations: int = 100,
                             runs_dir=None, progress=True, cached_only: bool = False):
    """The LR range test for ``config``, cached like a run.

    The result is stored as JSON under ``<runs_dir>/lr_find/`` keyed by the
    run id of ``config`` (its id fields and the data's content) and the
    iteration count, so re-rendering the report never repeats it. A damaged
    cache file is named in a warning and the test runs again.

    Args:
        cached_only: Return None instead of running a test that is not cached
            (the summary table reads results, it never trains).

    Returns:
        An object with ``learning_rates``, ``losses``, ``smoothed_losses``,
        ``suggested_base_learning_rate`` and ``suggested_max_learning_rate``.

    Used in: 05_cyclical_lr, 08_summary
    """
    import types

    from helpers.records import write_json_atomic

    from helpers import committed

    folder = committed.active_folder()
    if folder is not None:
        payload = folder.range_test_for(config, num_iterations)
        if payload is None:
            if cached_only:
                return None
            raise committed.missing_run(folder, "the LR range test", config, what="range test")
        return types.SimpleNamespace(**payload)
    cache = range_test_path(config, num_iterations, runs_dir)
    payload = _read_range_test(cache)
    if payload is None:
        if cached_only:
            return None
        from helpers.engine import find_learning_rate

        result = find_learning_rate(config, num_iterations=num_iterations, progress=progress)
        payload = result.to_dict()
        payload["config"] = config.to_dict()
        write_json_atomic(cache, payload)
    return types.SimpleNamespace(**payload)
