"""Published numbers and the student's numbers, each with its model and source.

These are reference data quoted from papers, reference repositories and the
student's report (see ``shared/REFERENCES.md`` in the project's workspace),
never results of this project: the summary table prints them *beside* the
numbers read from this execution's run records, each with a footnote that
names the model the number belongs to and where it was published.
"""

from __future__ import annotations

import dataclasses

WHO = ("student", "published")


@dataclasses.dataclass(frozen=True)
class Reference:
    """One quoted accuracy.

    Attributes:
        experiment: Which group of the summary it belongs to, e.g.
            "ResNet-20 on CIFAR-10".
        who: "student" or "published".
        value: Accuracy in percent.
        metric: "test accuracy", "top-1" or "top-5" (test set).
        model: The network and recipe the number was measured on, in full
            (it is not always the arm's: kuangliu's VGG16 stands beside our
            VGG-19).
        source: Where the number comes from, precise enough to look up.
    """

    experiment: str
    who: str
    value: float
    metric: str
    model: str
    source: str

    def __post_init__(self):
        if self.who not in WHO:
            raise ValueError(f"Reference.who must be one of {WHO}. Received: {self.who!r}")

    def describe(self) -> str:
        """The footnote: "Published: 91.25% test accuracy. ResNet-20 (...). He et al. 2016, ..."."""
        who = "The student" if self.who == "student" else "Published"
        return f"{who}: {self.value:g}% {self.metric}. Model: {self.model}. Source: {self.source}."


_KUANGLIU = ("kuangliu/pytorch-cifar, README table: the best epoch's test accuracy (the test set also "
             "chose the epoch)")
_KUANGLIU_RECIPE = ("SGD 0.1, momentum 0.9, weight decay 5e-4, batch 128, crop and flip, cosine over "
                    "200 epochs")
_HE_2016 = "He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition (CVPR), Table 6"
_HE_RECIPE = ("SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, rate divided by 10 at 32k and 48k "
              "iterations, 64k iterations (about 182 epochs), crop and flip")

REFERENCES: tuple[Reference, ...] = (
    Reference("VGG-19 on CIFAR-10", "student", 70.0, "test accuracy",
              "VGG-19-like network without batch norm, with a learning-rate schedule",
              "the student's report: the loss spiked and the accuracy collapsed; with a schedule, "
              "about 70% test accuracy"),
    Reference("VGG-19 on CIFAR-10", "published", 92.64, "test accuracy",
              f"VGG16 with batch norm (not VGG-19), full width; {_KUANGLIU_RECIPE}", _KUANGLIU),
    Reference("ResNet-20 on CIFAR-10", "student", 80.0, "test accuracy",
              "ResNet-20",
              "the student's report: about 80%"),
    Reference("ResNet-20 on CIFAR-10", "published", 91.25, "test accuracy",
              f"ResNet-20 (0.27M parameters), {_HE_RECIPE}", f"{_HE_2016}: 8.75% test error"),
    Reference("ResNet-56 on CIFAR-10", "published", 93.03, "test accuracy",
              f"ResNet-56 (0.85M parameters), {_HE_RECIPE}", f"{_HE_2016}: 6.97% test error"),
    Reference("ResNet-110 on CIFAR-10", "published", 93.39, "test accuracy",
              f"ResNet-110 (1.7M parameters), warm-up at 0.01 for about 400 iterations, then {_HE_RECIPE}",
              f"{_HE_2016}: 6.61 +- 0.16% test error, mean of 5 runs (best 6.43%)"),
    Reference("ResNet-50 on CIFAR-10", "student", 75.0, "test accuracy",
              "ResNet-50 (03 tests its ImageNet stem as the likely cause)", "the student's report: 75%"),
    Reference("ResNet-50 on CIFAR-10", "published", 93.62, "test accuracy",
              "ResNet50 with the CIFAR stem (3x3 stride-1 first convolution, no max-pool), full width; "
              f"{_KUANGLIU_RECIPE}", _KUANGLIU),
    Reference("ResNet-18 + dropout on CIFAR-10", "student", 86.75, "test accuracy",
              "ResNet-18 with dropout 0.5 in the residual blocks and 0.3 before the classifier, "
              "ReduceLROnPlateau (factor 0.1, patience 10)",
              "the student's report: 86.75% (the rate reduction shows near epoch 105)"),
    Reference("ResNet-18 + dropout on CIFAR-10", "published", 93.02, "test accuracy",
              f"ResNet18 without dropout, CIFAR stem, full width; {_KUANGLIU_RECIPE}", _KUANGLIU),
    Reference("One-cycle ResNet-56 on CIFAR-10", "published", 92.4, "test accuracy",
              "ResNet-56, one learning-rate cycle from 0.1 to 3.0 and back over 10k iterations "
              "(against 91.2% for a piecewise-constant schedule over 80k iterations)",
              "Smith & Topin 2017, Super-Convergence (arXiv 1708.07120)"),
    Reference("epsilon-ResNet-110 on CIFAR-10", "published", 94.76, "test accuracy",
              "epsilon-ResNet-110 (pre-activation blocks, side supervision) with epsilon 2.5",
              "Yu, Yu & Ramalingam 2018, Learning Strict Identity Mappings in Deep Residual Networks "
              "(CVPR): 5.24% test error"),
    Reference("ResNet-18 on CIFAR-100", "student", 49.40, "top-1",
              "ResNet-18 with sparse dropout 0.5 after the shortcut addition, ReduceLROnPlateau",
              "the student's report: loss 2.2637, top-1 49.40%"),
    Reference("ResNet-18 on CIFAR-100", "student", 78.42, "top-5",
              "ResNet-18 with sparse dropout 0.5 after the shortcut addition, ReduceLROnPlateau",
              "the student's report: top-5 78.42%"),
    Reference("ResNet-18 on CIFAR-100", "published", 75.61, "top-1",
              "resnet18 (11.2M parameters), CIFAR stem; SGD 0.1, momentum 0.9, weight decay 5e-4, "
              "batch 128, 200 epochs, rate x0.2 at epochs 60, 120 and 160, one warm-up epoch",
              "weiaicunzai/pytorch-cifar100, README table: 24.39% top-1 error"),
    Reference("ResNet-18 on CIFAR-100", "published", 93.05, "top-5",
              "resnet18 (11.2M parameters), CIFAR stem; SGD 0.1, momentum 0.9, weight decay 5e-4, "
              "batch 128, 200 epochs, rate x0.2 at epochs 60, 120 and 160, one warm-up epoch",
              "weiaicunzai/pytorch-cifar100, README table: 6.95% top-5 error"),
)


def references_for(experiment: str, who: str | None = None) -> list[Reference]:
    """The quoted numbers of one summary group, optionally only the student's or the published.

    Used in: 08_summary
    """
    return [reference for reference in REFERENCES
            if reference.experiment == experiment and (who is None or reference.who == who)]
