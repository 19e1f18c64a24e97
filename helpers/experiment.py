"""What decides a training run: one frozen, hashable, JSON-ready configuration.

A notebook describes an experiment as an :class:`ExperimentConfig` and a
comparison as ``base.replace(one_field=other_value)``; the engine
(:mod:`helpers.engine`) turns a configuration into a run record and caches it
under an id derived from the configuration.

Which fields make up the id. Every field that can change what is trained or
measured does: dataset, model and options, optimiser, rates, decay, batch,
epochs, schedule, augmentation, sizes, seeds, precision, compilation,
distribution, determinism, diagnostics. Three fields do not:

* ``name``: a human label for tables and legends;
* ``data_dir``: *where* the data lives on this machine. The engine keys runs
  on the *content* of the data instead (see ``helpers.engine.resolve_run_id``),
  so moving the data, or pointing at the same archive from another directory,
  keeps every cached run, while a different copy of the dataset (say the JPEG
  CIFAR-10 mirror against the official pickles) gets runs of its own;
* ``steps_per_execution``: how many steps run per call into the graph. It
  changes speed and how often the progress bar moves, not the arithmetic it
  asks for. (Several steps per call run in a ``tf.while_loop`` that was not
  repeatable bit for bit, so ``deterministic`` runs always take one step per
  call and a deterministic run repeats exactly whatever this field says.)

This module imports neither TensorFlow nor Keras, so reading and comparing
configurations (for the report, say) stays cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, Iterator

# Bumped whenever the meaning of a field or of the training loop changes in a
# way that makes older runs incomparable; it is part of every run id.
CONFIG_SCHEMA_VERSION = 1

DATASETS = ("cifar10", "cifar100")
OPTIMIZERS = ("sgd", "adam")
# The names helpers.schedules.make_schedule accepts.
SCHEDULES = ("constant", "step", "plateau", "cosine", "clr", "onecycle")
WEIGHT_DECAY_MODES = ("coupled", "decoupled")
STRATEGIES = (None, "mirrored", "multiworker")
MIXED_PRECISION_POLICIES = ("mixed_float16", "mixed_bfloat16")

# Fields left out of the run id; see the module docstring for why.
NON_ID_FIELDS = ("name", "data_dir", "steps_per_execution")

# Fields added after run ids were first computed: part of the id only when set
# away from their default, so every earlier configuration keeps its run id.
LATER_ID_FIELDS = {"train_eval_size": 0}


class FrozenOptions(Mapping):
    """An immutable, hashable mapping of option names to JSON-ready values.

    Keys are sorted, lists become tuples and nested mappings become
    ``FrozenOptions``, so two configurations built from equal dicts are equal
    and hash alike. Reads like a dict: ``options["dropout"]``,
    ``{**options, "dropout": 0.3}``.
    """

    __slots__ = ("_items", "_hash")

    def __init__(self, values: Mapping | None = None, **kwargs: Any):
        merged = dict(values or {})
        merged.update(kwargs)
        items = []
        for key in sorted(merged):
            if not isinstance(key, str) or not key:
                raise ValueError(
                    f"Option names must be non-empty strings. Received: {key!r}"
                )
            items.append((key, _freeze_value(merged[key], key)))
        object.__setattr__(self, "_items", tuple(items))
        object.__setattr__(self, "_hash", hash(self._items))

    def __setattr__(self, name, value):
        raise AttributeError("FrozenOptions is immutable; build a new one instead.")

    def __getitem__(self, key: str) -> Any:
        for item_key, value in self._items:
            if item_key == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, FrozenOptions):
            return self._items == other._items
        if isinstance(other, Mapping):
            return self == FrozenOptions(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenOptions({dict(self.to_dict())!r})"

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (tuples back to lists)."""
        return {key: _thaw_value(value) for key, value in self._items}


def _freeze_value(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return FrozenOptions(value)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_value(item, where) for item in value)
    if value is None or isinstance(value, (bool, str)):
        return value
    # numpy scalars and the like: keep the exact Python type JSON will write.
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"Option '{where}' must be a finite number. Received: {value!r}"
            )
        return float(value)
    raise ValueError(
        f"Option '{where}' must be a JSON value (number, string, bool, None, list "
        f"or mapping). Received: {value!r} of type {type(value).__name__}"
    )


def _thaw_value(value: Any) -> Any:
    if isinstance(value, FrozenOptions):
        return value.to_dict()
    if isinstance(value, tuple):
        return [_thaw_value(item) for item in value]
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides one training run.

    Defaults follow He et al. (2016) for CIFAR ResNets: SGD with momentum 0.9,
    learning rate 0.1, weight decay 1e-4 (an L2 coefficient, see
    ``weight_decay_mode``), batch 128, pad-and-crop plus flip augmentation.

    Attributes:
        model: A name known to ``helpers.models.build_model`` ("resnet20", ...).
        dataset: "cifar10" or "cifar100".
        data_dir: Where to read the data from (a directory or archive); None
            uses ``CIFAR_DATA_DIR`` or the Keras download. Not part of the id.
        model_options: Keyword options for the model builder, e.g.
            ``{"width_multiplier": 0.5, "dropout": 0.3}``.
        optimizer: "sgd" (heavy-ball momentum, optionally Nesterov) or "adam".
        learning_rate: The base (for cyclical schedules: the maximum) rate,
            per step, for the *global* batch. Under tf.distribute the batch is
            split over replicas and the rate is used as given: scale it
            yourself if you change the global batch (linear scaling rule,
            Goyal et al. 2017: rate proportional to global batch, with
            warm-up). The engine never rescales silently.
        momentum: SGD momentum (Adam's beta_1 stays at its default 0.9).
        nesterov: Nesterov momentum for SGD.
        weight_decay: Decay coefficient applied to convolution and dense
            *kernels* only (never biases, batch-norm or gate parameters).
        weight_decay_mode: "coupled" (default): classical L2 regularisation,
            the gradient of ``weight_decay / 2 * ||w||^2`` is added to each
            kernel's gradient before the optimiser step. This is what He et
            al., Smith and the Torch/PyTorch SGD ``weight_decay`` do, so the
            papers' 1e-4 / 5e-4 mean the same here. "decoupled": AdamW / SGDW
            style, ``w -= learning_rate * weight_decay * w`` each step,
            independent of the gradient (Loshchilov & Hutter 2019); the
            usual choice for Adam. The decay never shows up in the recorded
            loss, which is the data loss only.
        batch_size: Images per optimisation step, summed over all replicas.
        num_epochs: Passes over the training split.
        schedule: A name known to ``helpers.schedules.make_schedule``:
            "constant", "step", "plateau", "cosine", "clr", "onecycle".
        schedule_options: Keyword options for that schedule.
        augment: Pad-4 random crop and horizontal flip on training batches.
        train_size: A stratified subset of the training split; None keeps
            all of it (45,000 images with the default validation split).
        validation_size: Images held out of the official training set for
            validation; 0 disables validation (and with it "plateau").
        test_size: None (default) evaluates on the whole official test set;
            a number evaluates on a fixed stratified subset of it, the same
            for every run and seed (``helpers.data.TEST_SUBSET_SEED``). Only
            the reduced profiles use it, to keep a CPU run's one test pass
            cheap; the full profile always uses all 10,000 images.
        data_seed: Seeds the validation split and the training subset. Kept
            apart from ``seed`` so that repeats over seeds share one split.
        label_smoothing: Label smoothing of the cross-entropy, in [0, 1).
        seed: Seeds weights, shuffling, augmentation and dropout.
        mixed_precision: False for float32; True for "mixed_float16" on a GPU
            and "mixed_bfloat16" on a CPU; or one of those policy names.
            Worth it on GPUs with tensor cores (V100 and later, T4, A100,
            H100): about 2x faster. On CPUs bfloat16 helps only where the CPU
            has AMX / AVX512-BF16 (measure first).
        jit_compile: XLA-compile the training step: True, False or "auto"
            (Keras: XLA on GPUs, never on CPUs). Usually faster on GPUs for
            small CIFAR models; the first epoch pays the compile time.
        strategy: None (one device), "mirrored" (synchronous data parallel
            over the visible GPUs, or over the logical CPU devices when there
            is no GPU) or "multiworker" (synchronous over the processes named
            by the ``TF_CONFIG`` environment variable).
        deterministic: Make the run repeatable bit for bit on a given
            machine: TensorFlow op determinism and ordered input pipelines.
            Costs little on CPUs; on GPUs it can slow some layers down.
        record_gradient_norms: Record each weight layer's gradient norm on a
            fixed, class-stratified batch before training and after every
            epoch.
        train_eval_size: After every epoch, evaluate this many training
            images (class-stratified and the same in every run,
            ``helpers.training.measurement_indices``; un-augmented) in
            inference mode, as the trained net is used: history keys
            ``train_eval_loss`` and ``train_eval_accuracy``, beside the
            running training metrics that ``fit`` averages over the epoch
            in training mode (dropout on, batch statistics, augmented
            images). 0 (default) evaluates nothing; part of the run id only
            when set.
        steps_per_execution: Training steps per call into the compiled graph,
            or "auto" (the engine picks a divisor of the steps per epoch).
            Deterministic runs take one step per call whatever this says.
            Not part of the id.
        name: A free-text label for tables and legends. Not part of the id.

    Used in: 01_vgg_gradients through 07_cifar100 (every training run).
    """

    model: str
    dataset: str = "cifar10"
    data_dir: str | None = None
    model_options: Mapping[str, Any] = dataclasses.field(default_factory=FrozenOptions)
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    weight_decay_mode: str = "coupled"
    batch_size: int = 128
    num_epochs: int = 10
    schedule: str = "constant"
    schedule_options: Mapping[str, Any] = dataclasses.field(default_factory=FrozenOptions)
    augment: bool = True
    train_size: int | None = None
    validation_size: int = 5000
    test_size: int | None = None
    data_seed: int = 0
    label_smoothing: float = 0.0
    seed: int = 0
    mixed_precision: bool | str = False
    jit_compile: bool | str = False
    strategy: str | None = None
    deterministic: bool = True
    record_gradient_norms: bool = True
    train_eval_size: int = 0
    steps_per_execution: int | str = "auto"
    name: str = ""

    def __post_init__(self) -> None:
        def set_field(field_name: str, value: Any) -> None:
            object.__setattr__(self, field_name, value)

        for field_name in ("model_options", "schedule_options"):
            value = getattr(self, field_name)
            if value is None:
                value = {}
            if not isinstance(value, Mapping):
                raise ValueError(
                    f"{field_name} must be a mapping of option names to values. "
                    f"Received: {value!r}"
                )
            set_field(field_name, value if isinstance(value, FrozenOptions) else FrozenOptions(value))

        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(f"model must be a model name such as 'resnet20'. Received: {self.model!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {list(DATASETS)}. Received: {self.dataset!r}")
        if self.data_dir is not None:
            set_field("data_dir", str(self.data_dir))
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}. Received: {self.optimizer!r}")
        if self.weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(
                f"weight_decay_mode must be one of {list(WEIGHT_DECAY_MODES)}. "
                f"Received: {self.weight_decay_mode!r}"
            )

        for field_name, low, high, low_inclusive in (
            ("learning_rate", 0.0, math.inf, False),
            ("momentum", 0.0, 1.0, True),
            ("weight_decay", 0.0, math.inf, True),
            ("label_smoothing", 0.0, 1.0, True),
        ):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
                raise ValueError(f"{field_name} must be a number. Received: {value!r}")
            value = float(value)
            too_low = value < low if low_inclusive else value <= low
            if not math.isfinite(value) or too_low or value >= high:
                bound = "[" if low_inclusive else "("
                raise ValueError(
                    f"{field_name} must lie in {bound}{low}, {high}). Received: {value!r}"
                )
            set_field(field_name, value)

        for field_name, minimum, optional in (
            ("batch_size", 1, False),
            ("num_epochs", 1, False),
            ("train_size", 1, True),
            ("validation_size", 0, False),
            ("test_size", 1, True),
            ("data_seed", 0, False),
            ("seed", 0, False),
            ("train_eval_size", 0, False),
        ):
            value = getattr(self, field_name)
            if value is None and optional:
                continue
            if hasattr(value, "item") and not isinstance(value, (int, float, bool)):
                value = value.item()  # numpy integers
            if not _is_int(value) or value < minimum:
                kind = "an integer" + (" or None" if optional else "")
                raise ValueError(f"{field_name} must be {kind} >= {minimum}. Received: {value!r}")
            set_field(field_name, int(value))

        for field_name in ("nesterov", "augment", "deterministic", "record_gradient_norms"):
            if not isinstance(getattr(self, field_name), bool):
                raise ValueError(f"{field_name} must be True or False. Received: {getattr(self, field_name)!r}")

        if not isinstance(self.schedule, str) or not self.schedule.strip():
            raise ValueError(f"schedule must be a schedule name such as 'onecycle'. Received: {self.schedule!r}")
        if not (isinstance(self.mixed_precision, bool) or self.mixed_precision in MIXED_PRECISION_POLICIES):
            raise ValueError(
                "mixed_precision must be True, False, 'mixed_float16' or 'mixed_bfloat16'. "
                f"Received: {self.mixed_precision!r}"
            )
        if not (isinstance(self.jit_compile, bool) or self.jit_compile == "auto"):
            raise ValueError(f"jit_compile must be True, False or 'auto'. Received: {self.jit_compile!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}. Received: {self.strategy!r}")
        steps = self.steps_per_execution
        if not (steps == "auto" or (_is_int(steps) and steps >= 1)):
            raise ValueError(
                f"steps_per_execution must be a positive integer or 'auto'. Received: {steps!r}"
            )
        if not isinstance(self.name, str):
            raise ValueError(f"name must be a string. Received: {self.name!r}")
        if self.train_size is not None and self.train_size < self.batch_size:
            raise ValueError(
                f"train_size ({self.train_size}) must be at least batch_size "
                f"({self.batch_size}): every epoch needs one full batch. Received: "
                f"train_size={self.train_size}"
            )

    # -- serialisation ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (options as plain dicts)."""
        result = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            result[field.name] = value.to_dict() if isinstance(value, FrozenOptions) else value
        return result

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ExperimentConfig":
        """Rebuilds a configuration from :meth:`to_dict` output.

        Raises:
            ValueError: for unknown keys (a record from a newer version, or a
                typo) or invalid values.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown ExperimentConfig field(s) {unknown}; known fields are "
                f"{sorted(known)}. Received: {unknown}"
            )
        return cls(**dict(values))

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def id_fields(self) -> dict[str, Any]:
        """The fields that decide the run id (everything but NON_ID_FIELDS, and
        LATER_ID_FIELDS only when set)."""
        values = self.to_dict()
        for field_name in NON_ID_FIELDS:
            values.pop(field_name)
        for field_name, default in LATER_ID_FIELDS.items():
            if values[field_name] == default:
                values.pop(field_name)
        return values

    @property
    def config_hash(self) -> str:
        """A 16-hex-digit hash of :meth:`id_fields` and the schema version.

        The engine's run id combines this with the identity of the data, see
        ``helpers.engine.resolve_run_id``.
        """
        payload = {"schema": CONFIG_SCHEMA_VERSION, "config": self.id_fields()}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:16]

    # -- convenience --------------------------------------------------------

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A copy with some fields changed, validated like a new one.

        ``model_options`` and ``schedule_options`` are replaced whole; to
        change one option use :meth:`with_model_options` or
        :meth:`with_schedule_options`.

        Used in: every notebook's one-factor comparisons.
        """
        unknown = sorted(set(changes) - {field.name for field in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"ExperimentConfig has no field(s) {unknown}. Received: {unknown}")
        return dataclasses.replace(self, **changes)

    def with_model_options(self, **options: Any) -> "ExperimentConfig":
        """A copy with these model options added or changed (None removes one)."""
        merged = {**self.model_options, **options}
        return self.replace(model_options={k: v for k, v in merged.items() if v is not None})

    def with_schedule_options(self, **options: Any) -> "ExperimentConfig":
        """A copy with these schedule options added or changed (None removes one)."""
        merged = {**self.schedule_options, **options}
        return self.replace(schedule_options={k: v for k, v in merged.items() if v is not None})

    @property
    def label(self) -> str:
        """``name`` if set, else a short description for legends."""
        if self.name:
            return self.name
        options = ",".join(f"{k}={v}" for k, v in self.model_options.items())
        model = f"{self.model}({options})" if options else self.model
        return f"{model} {self.optimizer} lr={self.learning_rate:g} {self.schedule}"


def canonical_json(value: Any) -> str:
    """The one JSON spelling of a value used for hashing: sorted, compact."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
