"""Findings text built from run records, never typed in.

Each function reads numbers from the records of the current execution and
words its sentences by what those numbers show (a statement that a run
"collapsed to chance" appears only when its accuracy really stayed there).
Notebooks display the returned Markdown.
"""

from __future__ import annotations

import math
from typing import Mapping

from helpers.records import RunRecord


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.1f}%"


def best_val(record: RunRecord) -> float:
    return record.best("val_accuracy") if "val_accuracy" in record.history else math.nan


def final_train_loss(record: RunRecord) -> float:
    return record.final("loss") if record.epochs_completed else math.nan


def run_line(label: str, record: RunRecord) -> str:
    """One bullet: status, best validation accuracy, test accuracy, epochs.

    Used in: every notebook's Findings
    """
    status = record.status
    if status == "diverged":
        status = f"diverged at epoch {record.diverged_epoch}"
    test = record.test_metric("accuracy")
    top5 = record.test.get("top5_accuracy")
    extra = f", test top-5 {_pct(top5)}" if top5 is not None else ""
    return (f"- **{label}**: {status}; best validation accuracy {_pct(best_val(record))}, "
            f"test accuracy {_pct(test)}{extra} after {record.epochs_completed} epochs.")


def _chance(record: RunRecord) -> float:
    return 1.0 / (100 if record.config.dataset == "cifar100" else 10)


def stuck_at_chance(record: RunRecord, margin: float = 0.05) -> bool:
    """True when the run diverged or its best validation accuracy stayed near chance."""
    best = best_val(record)
    return record.status == "diverged" or math.isnan(best) or best < _chance(record) + margin


def _gradient_ratio(record: RunRecord) -> float | None:
    """First-layer over last-layer gradient norm before the first step."""
    norms = record.diagnostics.get("gradient_norms") or {}
    values = [series[0] for series in norms.values() if series and series[0]]
    if len(values) < 2:
        return None
    return values[0] / values[-1]


def vgg_findings(records: Mapping[str, RunRecord]) -> str:
    """Used in: 01_vgg_gradients"""
    lines = [run_line(label, record) for label, record in records.items()]
    stuck = [label for label, record in records.items() if stuck_at_chance(record)]
    learned = [label for label, record in records.items() if not stuck_at_chance(record)]
    lines.append("")
    if stuck:
        lines.append(f"- Stuck at or near chance ({_pct(0.1)}) or diverged: {', '.join(stuck)}.")
    if learned:
        lines.append(f"- Learned (validation accuracy clearly above chance): {', '.join(learned)}.")
    for label, record in records.items():
        ratio = _gradient_ratio(record)
        if ratio is not None:
            lines.append(f"- {label}: before the first step the first layer's gradient norm is "
                         f"{ratio:.2g} x the last layer's.")
    return "\n".join(lines)


def ranking(records: Mapping[str, RunRecord], metric: str = "val_accuracy") -> str:
    """Arms ranked by their best ``metric``, with test accuracy beside.

    Used in: 02_lr_schedules, 04_dropout, 05_cyclical_lr
    """
    ordered = sorted(records.items(), key=lambda item: -(item[1].best(metric)
                                                          if metric in item[1].history else -1))
    lines = [run_line(label, record) for label, record in ordered]
    if len(ordered) >= 2:
        (top, top_record), (second, second_record) = ordered[0], ordered[1]
        gap = top_record.best(metric) - second_record.best(metric)
        lines.append("")
        lines.append(f"- Best on validation: **{top}**, {100 * gap:.1f} points ahead of {second}. "
                     "With one seed, differences of a point or two are within run-to-run noise.")
    return "\n".join(lines)


def degradation_findings(records: Mapping[str, RunRecord], depths: tuple[int, int]) -> str:
    """Used in: 03_resnet_depth"""
    shallow, deep = depths
    lines = [run_line(label, record) for label, record in records.items()]
    plain_shallow, plain_deep = records[f"plain-{shallow}"], records[f"plain-{deep}"]
    res_shallow, res_deep = records[f"ResNet-{shallow}"], records[f"ResNet-{deep}"]
    lines.append("")
    plain_gap = final_train_loss(plain_deep) - final_train_loss(plain_shallow)
    lines.append(
        f"- Final training loss: plain-{shallow} {final_train_loss(plain_shallow):.3f}, plain-{deep} "
        f"{final_train_loss(plain_deep):.3f}; ResNet-{shallow} {final_train_loss(res_shallow):.3f}, "
        f"ResNet-{deep} {final_train_loss(res_deep):.3f}.")
    if plain_gap > 0:
        lines.append(f"- The deeper plain net ends with the *higher* training loss (+{plain_gap:.3f}): "
                     "the degradation problem. It is an optimisation failure, not overfitting.")
    else:
        lines.append(f"- Here the deeper plain net did not train worse than the shallow one "
                     f"({plain_gap:+.3f}); at this budget the degradation effect did not show.")
    residual_gain = best_val(res_deep) - best_val(plain_deep)
    lines.append(f"- At depth {deep}, shortcuts change the best validation accuracy by "
                 f"{100 * residual_gain:+.1f} points.")
    return "\n".join(lines)


def stem_findings(records: Mapping[str, RunRecord]) -> str:
    """Used in: 03_resnet_depth"""
    lines = [run_line(label, record) for label, record in records.items()]
    for model in ("resnet18", "resnet50"):
        cifar, imagenet = records.get(f"{model} cifar stem"), records.get(f"{model} imagenet stem")
        if cifar and imagenet:
            lines.append(f"- {model}: the CIFAR stem's best validation accuracy is "
                         f"{100 * (best_val(cifar) - best_val(imagenet)):+.1f} points against the ImageNet stem.")
    return "\n".join(lines)


def weight_decay_shrink(config, steps_per_epoch: int) -> float:
    """How much weight decay alone shrinks a weight over a run's schedule.

    For a weight whose data gradient is negligible (a branch the network
    does not use), coupled decay with heavy-ball momentum m shrinks it by
    about ``learning_rate * decay / (1 - m)`` per step once momentum has
    built up (decoupled decay: ``learning_rate * decay``). The product over
    the run is ``exp(-sum of those)``; the rate is sampled at the middle of
    each epoch. Plateau schedules are taken at their starting rate, an
    upper bound on the shrinking.

    Used in: 06_sparse_gates
    """
    from helpers.schedules import learning_rate_at, make_schedule

    schedule = make_schedule(config.schedule, learning_rate=config.learning_rate, steps_per_epoch=steps_per_epoch,
                             num_epochs=config.num_epochs, **dict(config.schedule_options))
    rate_sum = sum(learning_rate_at(schedule, epoch * steps_per_epoch + steps_per_epoch // 2) * steps_per_epoch
                   for epoch in range(config.num_epochs))
    per_unit = config.weight_decay
    if config.weight_decay_mode == "coupled" and config.optimizer == "sgd":
        per_unit /= 1.0 - config.momentum
    return math.exp(-per_unit * rate_sum)


def gate_findings(records: Mapping[str, RunRecord], full_recipe=None, full_steps_per_epoch: int | None = None) -> str:
    """Blocks discarded, and why, from each run's recorded gate responses.

    ``full_recipe`` (a configuration of the full profile) adds how much
    weight decay would shrink an unused branch over that recipe, against
    this run's schedule.

    Used in: 06_sparse_gates
    """
    from helpers.plots import gate_epsilon

    lines = []
    for label, record in records.items():
        counts = record.diagnostics.get("discarded_blocks") or []
        total = len(record.diagnostics.get("gates") or {})
        final = counts[-1] if counts else 0
        ending = f"{final} of {total} blocks discarded at the end" if total else "no gates (epsilon 0)"
        lines.append(run_line(label, record)[:-1] + f"; {ending}.")
    lines.append("")
    for label, record in records.items():
        responses = record.diagnostics.get("gate_responses") or {}
        if not responses:
            continue
        epsilon = gate_epsilon(record)
        first = [values[0] for values in responses.values()]
        last = [values[-1] for values in responses.values()]
        below = sum(1 for value in last if value <= epsilon)
        text = (f"- {label}: each block's largest residual response |F| spanned {min(first):.3g}-{max(first):.3g} "
                f"before training and {min(last):.3g}-{max(last):.3g} after it, against epsilon {epsilon:g}: "
                f"{below} of {len(last)} blocks at or below it.")
        training_counts = record.diagnostics.get("discarded_blocks_training") or []
        if training_counts:
            text += (f" On the same batch in training mode (batch norm on the batch's statistics, as `fit` sees "
                     f"the gates) {training_counts[-1]} blocks are gated off, against {below} at inference.")
        if record.epochs_completed and "val_loss" in record.history:
            train_loss, val_loss = final_train_loss(record), record.final("val_loss")
            if math.isfinite(val_loss) and val_loss > 10 * train_loss:
                text += (f" Its validation loss ({val_loss:.3g}) is {val_loss / train_loss:.3g} times its training "
                         f"loss ({train_loss:.3g}): where gates differ between the two modes, the layers after them "
                         "receive activations their moving statistics never saw.")
        lines.append(text)
    gated = [record for record in records.values() if record.diagnostics.get("gate_responses")]
    if gated:
        record = gated[0]
        steps = int(record.data.get("steps_per_epoch") or 0)
        if steps:
            shrink = weight_decay_shrink(record.config, steps)
            text = (f"- Weight decay ({record.config.weight_decay:g}) alone would shrink an unused branch's weights "
                    f"to {100 * shrink:.1f}% of their size over this run ({record.config.num_epochs} epochs of "
                    f"{steps} steps)")
            if full_recipe is not None and full_steps_per_epoch:
                full = weight_decay_shrink(full_recipe, full_steps_per_epoch)
                text += (f", against {100 * full:.1f}% over the full recipe ({full_recipe.num_epochs} epochs of "
                         f"{full_steps_per_epoch} steps)")
            if shrink > 0.9:
                text += (". Discarding a block needs its branch to shrink below epsilon; at this budget decay has "
                         "barely begun, so which blocks are discarded is decided mostly by how large their responses "
                         "start")
            lines.append(text + ".")
    return "\n".join(lines)


def cifar100_findings(records: Mapping[str, RunRecord]) -> str:
    """Used in: 07_cifar100"""
    lines = [run_line(label, record) for label, record in records.items()]
    for label, record in records.items():
        if "val_top5_accuracy" in record.history:
            lines.append(f"- {label}: best validation top-5 {_pct(record.best('val_top5_accuracy'))} "
                         f"vs top-1 {_pct(best_val(record))}.")
    return "\n".join(lines)
