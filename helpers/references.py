"""Published numbers and the student's numbers, each with its source.

These are reference data quoted from papers, reference repositories and the
student's report (see ``shared/REFERENCES.md`` in the project's workspace),
never results of this project: the summary table prints them *beside* the
numbers read from this execution's run records.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Reference:
    """One quoted accuracy.

    Attributes:
        experiment: Which row of the summary it belongs to.
        who: "student" or "published".
        value: Accuracy in percent.
        metric: "test accuracy", "top-1", "top-5", ...
        source: Where the number comes from.
    """

    experiment: str
    who: str
    value: float
    metric: str
    source: str


REFERENCES: tuple[Reference, ...] = (
    Reference("VGG-19 on CIFAR-10", "student", 70.0, "test accuracy",
              "student report: VGG-19-like, no batch norm, LR schedule, about 70%"),
    Reference("VGG-19 on CIFAR-10", "published", 92.64, "test accuracy",
              "kuangliu/pytorch-cifar, VGG16 with batch norm (best-epoch test accuracy)"),
    Reference("ResNet-20 on CIFAR-10", "student", 80.0, "test accuracy", "student report: about 80%"),
    Reference("ResNet-20 on CIFAR-10", "published", 91.25, "test accuracy",
              "He et al. 2016, Table 6: 8.75% error"),
    Reference("ResNet-56 on CIFAR-10", "published", 93.03, "test accuracy",
              "He et al. 2016, Table 6: 6.97% error"),
    Reference("ResNet-110 on CIFAR-10", "published", 93.39, "test accuracy",
              "He et al. 2016, Table 6: 6.61 +- 0.16% error (mean of 5)"),
    Reference("ResNet-50 on CIFAR-10", "student", 75.0, "test accuracy", "student report: 75%"),
    Reference("ResNet-50 on CIFAR-10", "published", 93.62, "test accuracy",
              "kuangliu/pytorch-cifar, ResNet50 with the CIFAR stem"),
    Reference("ResNet-18 + dropout on CIFAR-10", "student", 86.75, "test accuracy",
              "student report: dropout 0.5 in blocks, 0.3 before classifier, ReduceLROnPlateau"),
    Reference("ResNet-18 + dropout on CIFAR-10", "published", 93.02, "test accuracy",
              "kuangliu/pytorch-cifar, ResNet18 (no dropout), cosine 200 epochs"),
    Reference("One-cycle ResNet-56 on CIFAR-10", "published", 92.4, "test accuracy",
              "Smith & Topin 2017 (super-convergence), 10k iterations"),
    Reference("epsilon-ResNet-110 on CIFAR-10", "published", 94.76, "test accuracy",
              "Yu, Yu & Ramalingam 2018: 5.24% error with eps 2.5"),
    Reference("ResNet-18 on CIFAR-100", "student", 49.40, "top-1", "student report: sparse dropout 0.5, ReduceLROnPlateau"),
    Reference("ResNet-18 on CIFAR-100", "student", 78.42, "top-5", "student report"),
    Reference("ResNet-18 on CIFAR-100", "published", 75.61, "top-1",
              "weiaicunzai/pytorch-cifar100: 24.39% top-1 error"),
    Reference("ResNet-18 on CIFAR-100", "published", 93.05, "top-5",
              "weiaicunzai/pytorch-cifar100: 6.95% top-5 error"),
)


def references_for(experiment: str) -> list[Reference]:
    """The quoted numbers of one summary row.

    Used in: 08_summary
    """
    return [reference for reference in REFERENCES if reference.experiment == experiment]
