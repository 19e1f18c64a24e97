"""The registered model names: which builder, depth and options each stands for.

``helpers.models`` builds the networks (and imports Keras); this module only
knows their names and the options each name takes, so that a typo in
``--model`` or ``--model-option`` is refused before any data is read or
TensorFlow imported. ``tests/test_models.py`` checks that the option lists
below are exactly the builders' keyword-only parameters.

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

# Keyword options of each builder in helpers.models, less ``depth`` (the name
# decides it) and ``name``.
BUILDER_OPTIONS: dict[str, tuple[str, ...]] = {
    "vgg": ("batch_norm", "classifier_dropout", "head", "kernel_initializer", "width_multiplier"),
    "cifar_resnet": ("block_dropout", "classifier_dropout", "epsilon", "kernel_initializer", "plain",
                     "post_add_dropout", "preactivation", "shortcut", "side_head", "side_loss_weight",
                     "width_multiplier"),
    "resnet": ("block_dropout", "classifier_dropout", "kernel_initializer", "post_add_dropout", "stem",
               "width_multiplier"),
}
VGG_DEPTHS = (11, 13, 16, 19)
IMAGENET_RESNET_DEPTHS = (18, 34, 50)
# The epsilon-ResNet paper's threshold.
DEFAULT_EPSILON = 2.5


@dataclasses.dataclass(frozen=True)
class RegisteredModel:
    """One model name.

    Attributes:
        builder: The builder function's name in ``helpers.models``.
        family: "vgg", "cifar_resnet", "cifar_plain", "cifar_preact_resnet",
            "eps_resnet" or "resnet".
        depth: Weighted layers, as in the name.
        fixed: Builder arguments the name decides; a caller may not pass them.
        defaults: Defaults that differ from the builder's; a caller may
            override them.
    """

    builder: str
    family: str
    depth: int
    fixed: Mapping[str, object]
    defaults: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def allowed_options(self) -> list[str]:
        return sorted(set(BUILDER_OPTIONS[self.builder]) - set(self.fixed))


def _registry() -> dict[str, RegisteredModel]:
    entries = {}
    for depth in VGG_DEPTHS:
        entries[f"vgg{depth}"] = RegisteredModel("vgg", "vgg", depth, {"depth": depth})
    for depth in (20, 32, 44, 56, 110, 1202):
        entries[f"resnet{depth}"] = RegisteredModel("cifar_resnet", "cifar_resnet", depth, {"depth": depth})
    for depth in (20, 32, 44, 56, 110):
        entries[f"plain{depth}"] = RegisteredModel("cifar_resnet", "cifar_plain", depth,
                                                   {"depth": depth, "plain": True})
    for depth in (20, 56, 110):
        entries[f"preact_resnet{depth}"] = RegisteredModel(
            "cifar_resnet", "cifar_preact_resnet", depth, {"depth": depth, "preactivation": True})
    for depth in (20, 32, 56, 110):
        entries[f"eps_resnet{depth}"] = RegisteredModel(
            "cifar_resnet", "eps_resnet", depth, {"depth": depth, "preactivation": True},
            {"epsilon": DEFAULT_EPSILON, "side_head": True, "name": f"eps_resnet{depth}"})
    for depth in IMAGENET_RESNET_DEPTHS:
        entries[f"resnet{depth}"] = RegisteredModel("resnet", "resnet", depth, {"depth": depth})
    return entries


REGISTRY: dict[str, RegisteredModel] = _registry()


def list_models() -> list[str]:
    """Returns the names ``helpers.models.build_model`` accepts, sorted.

    Used in: check_model (its error message), helpers.models.list_models
    """
    return sorted(REGISTRY)


def lookup(name) -> RegisteredModel:
    """The registered model ``name``.

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"Unknown model name. Allowed names: {', '.join(list_models())}. Received: name={name!r}")
    return REGISTRY[name]


def check_model(name, options: Mapping[str, object] | None = None) -> RegisteredModel:
    """The registered model ``name``, after checking that it takes ``options``.

    Only the option names are checked here; their values are checked by the
    builder.

    Raises:
        ValueError: for an unknown name, or an option the model does not take
            (the message lists the allowed ones).

    Used in: helpers.models.build_model, helpers.engine.run (before any data is read).
    """
    entry = lookup(name)
    options = dict(options or {})
    allowed = entry.allowed_options()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        received = ", ".join(f"{key}={options[key]!r}" for key in unknown)
        raise ValueError(
            f"Model {name!r} does not take option(s) {', '.join(unknown)}. "
            f"Allowed options: {', '.join(allowed)}. Received: {received}"
        )
    return entry
