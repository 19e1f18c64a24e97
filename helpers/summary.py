"""The series' summary: this report's headline arms beside the student's and the published numbers.

Rows are headline arms of notebooks 01-07, looked up by their keys
(``helpers.studies``) and read over the profile's seeds from the run cache
with ``studies.run_study(..., cached_only=True)``: nothing is trained here,
and an arm whose runs are not in the cache shows as "not run".

Each experiment names the arm that reproduces the student's set-up (where
there is one) and the fixes. A fix's verdict is computed from the per-image
test scores (``helpers.intervals``): (a) whether its accuracy interval lies
above or below the student's reported number, and (b) whether it beats our
own run of the student's set-up, a paired difference stated as a direction
only when resolved (at least two seeds and zero outside the interval).

This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
import datetime as _datetime
import html
import math
from typing import Mapping, Sequence

from helpers import environment, intervals, profiles, studies
from helpers.profiles import Profile
from helpers.references import Reference, references_for

# Roles of a row within its experiment.
STUDENT_SETUP = "student set-up"
FIX = "fix"
REFERENCE = "reference"
_ROLES = (STUDENT_SETUP, FIX, REFERENCE)

# Official CIFAR-10 sizes, for the profile statement (helpers.data.DATASETS
# holds the same; not imported to keep this module's import light).
OFFICIAL_TRAIN_IMAGES = 50_000
OFFICIAL_TEST_IMAGES = 10_000

NOT_RUN = "not run"


# ---------------------------------------------------------------------------
# What the profile can show
# ---------------------------------------------------------------------------


def _is_reduced(profile: Profile) -> bool:
    return profile.train_size is not None or profile.test_size is not None or profile.width < 1.0


def accuracy_half_width(test_images: int, accuracy: float = 0.5) -> float:
    """Half-width in points of the 95% binomial interval of one accuracy on ``test_images``.

    The widest case (accuracy 0.5) by default: 1,000 images give +-3.1 points.
    """
    return 100 * 1.96 * math.sqrt(accuracy * (1 - accuracy) / test_images)


def profile_statement(profile: Profile) -> str:
    """Which profile this is, what it can and cannot show, computed from the profile.

    Plain sentences (no Markdown markup), shown by the report above its first
    number and by 08_summary above the table.

    Used in: 08_summary and the report page's banner.
    """
    validation = profile.validation_size
    train = (f"{profile.train_size:,} training images" if profile.train_size is not None
             else f"all {OFFICIAL_TRAIN_IMAGES - validation:,} training images")
    test_images = profile.test_size or OFFICIAL_TEST_IMAGES
    test = (f"{test_images:,} of the {OFFICIAL_TEST_IMAGES:,} test images" if profile.test_size is not None
            else f"all {OFFICIAL_TEST_IMAGES:,} test images")
    epochs = sorted(set(profile.epochs.values()))
    epoch_text = f"{epochs[0]}-{epochs[-1]} epochs" if len(epochs) > 1 else f"{epochs[0]} epochs"
    shorter = [f"{what} {value}" for what, value in (("03's stems", profile.stem_epochs),
                                                      ("07's ResNet-110", profile.deep_epochs))
               if value and value < epochs[0]]
    if shorter:
        epoch_text += f" ({' and '.join(shorter)})"
    seeds = len(profile.seeds)
    more = sorted(notebook for notebook, values in profile.notebook_seeds.items() if len(values) != seeds)
    seed_text = f"{seeds} seed{'s' if seeds != 1 else ''} per arm"
    if more:
        counts = sorted({len(profile.seeds_for(notebook)) for notebook in more})
        seed_text += f" ({' or '.join(map(str, counts))} in {' and '.join(more)})"
    width = ("" if profile.width >= 1.0
             else f", VGG and ResNet-18/50 at {profile.width:g} of their width")
    sentences = [f"This report was run at the {profile.name} profile: {train}, {epoch_text} per run, "
                 f"{seed_text}, {test}{width}."]
    half_width = accuracy_half_width(test_images)
    if seeds < intervals.MINIMUM_SEEDS_FOR_A_CLAIM:
        sentences.append(
            "With one seed per arm no comparison can be resolved, and every finding says so; "
            "its numbers show that the series runs end to end, not what any recipe achieves.")
    else:
        sentences.append(
            f"It can show the direction of effects larger than the noise: a comparison states a "
            f"direction only when its 95% interval (over the test images and the {seeds} seeds) "
            f"excludes zero, and on {test_images:,} test images one accuracy alone is uncertain "
            f"by up to +-{half_width:.1f} points.")
    if _is_reduced(profile) and profile.train_size is None and profile.test_size is None:
        longer = sorted(value for value in (profile.long_epochs, profile.vgg_long_epochs) if value > epochs[-1])
        long_text = ("" if not longer else f" and one {longer[0]}-epoch arm" if len(longer) == 1
                     else f" and two longer arms ({' and '.join(map(str, longer))} epochs)")
        sentences.append(
            f"Its accuracies are real test accuracies on all {OFFICIAL_TEST_IMAGES:,} test images, of short "
            f"runs ({epoch_text}{long_text}{width}). Where a fix beats the student's number here, it beats it "
            f"with far less training than the student had; where it falls short, the budget may be why: the "
            f"published numbers come from 160-200 epochs at full width.")
    elif _is_reduced(profile):
        sentences.append(
            f"It cannot show accuracy levels or differences of a few points. A reduced profile is "
            f"not comparable with the student's or the published numbers, which come from full-scale "
            f"training (all {OFFICIAL_TRAIN_IMAGES - 5_000:,}-{OFFICIAL_TRAIN_IMAGES:,} training images, "
            f"full-width networks, most of them 160-200 epochs): read its numbers for directions, "
            f"not levels.")
    else:
        sentences.append(
            "It runs the published recipes' scale, so its accuracies can be set beside the published "
            "numbers, as mean and spread over the seeds; each published number's model and source is "
            "footnoted under the summary table.")
    if profile.left_out:
        dropped = [f"{notebook}'s arm {' + '.join(map(str, key))}" for notebook, keys in sorted(profile.left_out.items())
                   for key in keys]
        sentences.append(f"To fit its budget it leaves out {', '.join(dropped)}.")
    return " ".join(sentences)


# ---------------------------------------------------------------------------
# Which arms the summary shows
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RowPlan:
    """One arm of an experiment, by key, and its role.

    Attributes:
        key: The arm's key in its study (``helpers.studies``).
        role: "student set-up" (our reproduction of the student's failure),
            "fix" (compared with it and with the student's number) or
            "reference".
        note: What the role means for this arm, shown under its label.
    """

    key: tuple
    role: str
    note: str = ""
    # False for a fix that differs from the student's set-up in more than one
    # factor (a longer budget): compared with the student's number only.
    against_setup: bool = True

    def __post_init__(self):
        if self.role not in _ROLES:
            raise ValueError(f"RowPlan.role must be one of {_ROLES}. Received: {self.role!r}")


@dataclasses.dataclass(frozen=True)
class ExperimentPlan:
    """One group of the table: an experiment's arms and the rows shown.

    Attributes:
        experiment: The group's name, which is also the key of its quoted
            numbers in ``helpers.references``.
        arms: The study's arms (keys not listed in ``rows`` are not read).
        rows: The rows, in order; keys missing from ``arms`` are skipped.
        missing: Why the experiment has no arms to read, or None.
    """

    experiment: str
    arms: Mapping[tuple, studies.Arm]
    rows: tuple[RowPlan, ...]
    missing: str | None = None

    def shown_arms(self) -> dict[tuple, studies.Arm]:
        return {row.key: self.arms[row.key] for row in self.rows if row.key in self.arms}


_MODEL_NAMES = {"resnet20": "ResNet-20", "resnet18": "ResNet-18", "resnet50": "ResNet-50",
                "resnet56": "ResNet-56", "resnet110": "ResNet-110"}


def headline_experiments(profile: Profile, data_dir=None, runs_dir=None) -> list[ExperimentPlan]:
    """The experiments and arms of the summary table, at ``profile``'s scale.

    Reads nothing but the cached LR range test of 05 (its bounds define the
    cyclical arms).

    Used in: 08_summary
    """
    plans = [
        ExperimentPlan("VGG-19 on CIFAR-10", studies.vgg_arms(profile, data_dir), (
            RowPlan(("no_bn", "glorot", "sgd_high"), STUDENT_SETUP, "the student's set-up: no batch norm"),
            RowPlan(("no_bn", "glorot", "sgd_high", "plateau"), REFERENCE,
                    "the student's remedy: a plateau schedule, no batch norm"),
            RowPlan(("bn", "glorot", "sgd_high"), FIX, "fix: batch norm, same rate"),
            RowPlan(("bn", "glorot", "sgd_low"), FIX, "fix: batch norm, the lower rate"),
            RowPlan(("bn", "glorot", "sgd_high", "long"), FIX, f"fix: batch norm, cosine decay, "
                    f"{profile.vgg_long_epochs} epochs (a longer budget)", against_setup=False),
        )),
        ExperimentPlan("ResNet-20 on CIFAR-10", studies.schedule_arms(profile, data_dir), (
            RowPlan(("schedule", "plateau"), STUDENT_SETUP, "the student's schedule (ReduceLROnPlateau)"),
            RowPlan(("schedule", "step"), FIX, "fix: He et al.'s step decay"),
            RowPlan(("schedule", "cosine"), FIX, "fix: cosine decay"),
            RowPlan(("schedule", "cosine", "long"), FIX, f"fix: cosine decay, {profile.long_epochs} epochs "
                    "(a longer budget)", against_setup=False),
            RowPlan(("schedule", "constant"), REFERENCE, "no schedule"),
        )),
    ]
    depth = studies.depth_arms(profile, data_dir)
    if ("residual", 56) in depth:
        plans.append(ExperimentPlan("ResNet-56 on CIFAR-10", depth, (
            RowPlan(("residual", 56), REFERENCE, "He et al.'s recipe"),)))
    warmup = studies.warmup_arms(profile, data_dir)
    if warmup:
        plans.append(ExperimentPlan("ResNet-110 on CIFAR-10", warmup, (
            RowPlan(("warmup", True), REFERENCE, "He et al.'s warm-up"),
            RowPlan(("warmup", False), REFERENCE, "without the warm-up"),
        )))
    plans.append(ExperimentPlan("ResNet-50 on CIFAR-10", studies.stem_arms(profile, data_dir), (
        RowPlan(("resnet50", "imagenet"), STUDENT_SETUP, "the student's set-up: ImageNet stem"),
        RowPlan(("resnet50", "cifar"), FIX, "fix: CIFAR stem"),
    )))
    plans.append(ExperimentPlan("ResNet-18 + dropout on CIFAR-10", studies.dropout_arms(profile, data_dir), (
        RowPlan(("augmentation_weight_decay", "student_dropout"), STUDENT_SETUP,
                "the student's set-up: dropout 0.5 in blocks, 0.3 before the classifier"),
        RowPlan(("augmentation_weight_decay",), FIX, "fix: no dropout"),
    )))
    cyclical_name = ("One-cycle ResNet-56 on CIFAR-10" if profile.name == profiles.FULL
                     else "Cyclical LR, ResNet-20 on CIFAR-10")
    base = studies.cyclical_base(profile, data_dir)
    from helpers.data import CifarDataError

    try:
        # Cached results are keyed by the data's identity, so looking one up reads the data.
        range_test = studies.learning_rate_range_test(base, profile.lr_find_iterations, runs_dir,
                                                      progress=False, cached_only=True)
        missing = ("not run: the LR range test of 05_cyclical_lr, which sets these arms' rates, "
                   "is not in the cache")
    except CifarDataError as error:
        range_test, missing = None, f"not run: the data cannot be found ({error})"
    if range_test is None:
        plans.append(ExperimentPlan(cyclical_name, {}, (), missing=missing))
    else:
        rates = studies.range_test_reading(range_test)
        cyclical = studies.cyclical_arms(profile, rates.base_learning_rate, rates.max_learning_rate, data_dir,
                                         high_learning_rate=rates.high_learning_rate)
        plans.append(ExperimentPlan(cyclical_name, cyclical, (
            RowPlan(("schedule", "step"), REFERENCE, "step decay"),
            RowPlan(("schedule", "clr"), REFERENCE, "triangular CLR, bounds from the range test"),
            RowPlan(("schedule", "onecycle"), REFERENCE, "one-cycle, same budget"),
            RowPlan(("schedule", "onecycle_short"), REFERENCE, "one-cycle, a quarter of the budget"),
            RowPlan(("schedule", "superconvergence"), REFERENCE, "one-cycle at a high peak (super-convergence)"),
        )))
    gates = studies.gate_arms(profile, data_dir)
    depth_key = profile.epsilon_depth
    largest = float(max(profile.epsilons))
    plans.append(ExperimentPlan(f"epsilon-ResNet-{depth_key} on CIFAR-10", gates, (
        RowPlan((depth_key, 0.0), REFERENCE, "epsilon 0: no gate ever closes"),
        RowPlan((depth_key, largest), REFERENCE, f"epsilon {largest:g}, the largest tried"),
    )))
    cifar100 = studies.cifar100_arms(profile, data_dir)
    plans.append(ExperimentPlan("ResNet-18 on CIFAR-100", cifar100, (
        RowPlan(("resnet18", "post_add_dropout"), STUDENT_SETUP,
                "the student's set-up: dropout 0.5 after the addition"),
        RowPlan(("resnet18",), FIX, "fix: no dropout, CIFAR stem, cosine"),
    )))
    plans.append(ExperimentPlan("ResNet-50 on CIFAR-100", cifar100, (
        RowPlan(("resnet50", "imagenet"), STUDENT_SETUP, "the student's set-up: ImageNet stem"),
        RowPlan(("resnet50",), FIX, "fix: CIFAR stem"),
    )))
    for model in profile.cifar100_models:
        if model not in ("resnet18", "resnet50") and (model,) in cifar100:
            plans.append(ExperimentPlan(f"{_MODEL_NAMES.get(model, model)} on CIFAR-100", cifar100, (
                RowPlan((model,), REFERENCE, "CIFAR stem, cosine"),)))
    return plans


# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------


def _is_cifar100(result: studies.ArmResult) -> bool:
    return result.config.dataset == "cifar100"


def this_report_cell(result: studies.ArmResult | None) -> str:
    """ "84.1 +- 0.6 (n = 2)", with top-5 on CIFAR-100, seeds missing and divergences."""
    if result is None or result.n == 0:
        return NOT_RUN
    text = intervals.format_mean_spread(result.test_values("accuracy"))
    if _is_cifar100(result):
        text = f"top-1 {text}; top-5 {intervals.format_mean_spread(result.test_values('top5_accuracy'))}"
    notes = []
    if result.n < len(result.seeds):
        notes.append(f"{result.n} of {len(result.seeds)} seeds in the cache")
    diverged = sum(1 for record in result.completed if record.status == "diverged")
    if diverged:
        notes.append(f"{diverged} diverged")
    return "; ".join([text, *notes])


def student_number(student: Sequence[Reference]) -> Reference | None:
    """The student's top-1 / test accuracy, the number a fix is held against."""
    for reference in student:
        if reference.metric in ("test accuracy", "top-1"):
            return reference
    return None


def _scores(result: studies.ArmResult | None):
    """(per-image scores [seeds, images] or None, why not)."""
    if result is None or result.n == 0:
        return None, NOT_RUN
    try:
        correct = result.test_correct("accuracy")
    except ValueError as error:
        return None, f"not comparable ({error})"
    if correct is None:
        return None, "its records hold no per-image test scores (rerun its notebook)"
    return correct, ""


def _one_seed(interval: intervals.Interval) -> str:
    return "; one seed cannot support a claim" if interval.seeds < intervals.MINIMUM_SEEDS_FOR_A_CLAIM else ""


def against_student_number(fix: studies.ArmResult, student_percent: float) -> str:
    """(a): where the fix's accuracy interval lies against the student's reported number.

    "beats the student's 70%: 84.1% (95% interval ...)" when the whole
    interval lies above it (and there are >= 2 seeds), "below the student's
    ..." when it lies below, otherwise "does not resolve against ...".
    """
    number = f"the student's {student_percent:g}%"
    correct, why_not = _scores(fix)
    if correct is None:
        return f"Against {number}: {why_not}."
    interval = intervals.accuracy_interval(correct)
    student = student_percent / 100.0
    if interval.seeds >= intervals.MINIMUM_SEEDS_FOR_A_CLAIM and interval.low > student:
        return f"Beats {number}: {interval.percent()}."
    if interval.seeds >= intervals.MINIMUM_SEEDS_FOR_A_CLAIM and interval.high < student:
        return f"Below {number}: {interval.percent()}."
    return f"Does not resolve against {number}: {interval.percent()}{_one_seed(interval)}."


def against_student_setup(fix: studies.ArmResult, setup: studies.ArmResult | None) -> str:
    """(b): the fix against our own run of the student's set-up, paired over images and seeds.

    A direction is stated only when the difference is resolved (at least
    two seeds and an interval that excludes zero).
    """
    what = "our run of the student's set-up"
    setup_correct, why_not = _scores(setup)
    if setup_correct is None:
        return f"Against {what}: {why_not}."
    fix_correct, why_not = _scores(fix)
    if fix_correct is None:
        return f"Against {what}: {why_not}."
    try:
        difference = intervals.difference_interval(fix_correct, setup_correct)
    except ValueError as error:
        return f"Against {what}: not comparable ({error})."
    if difference.resolved:
        verb = "Beats" if difference.estimate > 0 else "Falls below"
        return f"{verb} {what}: {difference.points()}."
    return f"Does not resolve against {what}: {difference.points()}{_one_seed(difference)}."


def verdict_cell(plan: RowPlan, result: studies.ArmResult | None, student: Reference | None,
                 setup: studies.ArmResult | None, has_setup: bool) -> list[str]:
    """The verdict column's sentences for one row."""
    if result is None or result.n == 0:
        return [NOT_RUN]
    if plan.role == STUDENT_SETUP:
        return ["The student's set-up, reproduced at this budget: the fixes are compared with it."]
    if plan.role != FIX:
        return ["-"]
    sentences = []
    if student is not None:
        sentences.append(against_student_number(result, student.value))
    if has_setup and plan.against_setup:
        sentences.append(against_student_setup(result, setup))
    elif has_setup and setup is not None and setup.n:
        sentences.append(f"Not compared with our run of the student's set-up: it trains for "
                         f"{result.config.num_epochs} epochs, the set-up for {setup.config.num_epochs}.")
    return sentences or ["No student number or set-up to compare with."]


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Footnote:
    number: int
    reference: Reference

    @property
    def marker(self) -> str:
        return f"[{self.number}]"


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One arm's row; ``student`` and ``published`` hold (text, footnote) pairs."""

    experiment: str
    arm: str
    note: str
    role: str
    this_report: str
    student: tuple[tuple[str, Footnote], ...]
    published: tuple[tuple[str, Footnote], ...]
    verdict: tuple[str, ...]


def _quoted(reference: Reference) -> str:
    metric = f"{reference.metric} " if reference.metric in ("top-1", "top-5") else ""
    return f"{metric}{reference.value:g}%"


class SummaryTable:
    """The designed summary: grouped rows, named columns, full footnotes.

    Displays as HTML in Jupyter and in the report (``_repr_html_``): one
    ``<table>`` whose cells wrap, then the footnotes in full.
    :meth:`to_frame` gives the same content as a DataFrame (for tests and
    further analysis), one row per arm and no index column.

    Used in: 08_summary
    """

    def __init__(self, profile: Profile, groups: Sequence[tuple[str, list[SummaryRow]]],
                 footnotes: Sequence[Footnote], machines: Mapping[str, int] | None = None):
        self.profile = profile
        self.groups = list(groups)
        self.footnotes = list(footnotes)
        self.machines = dict(machines or {})

    @property
    def columns(self) -> list[str]:
        return ["experiment", "arm", f"this report ({self.profile.name})", "student", "published",
                "fix vs the student's failure at this budget"]

    @property
    def rows(self) -> list[SummaryRow]:
        return [row for _, rows in self.groups for row in rows]

    def to_frame(self):
        """One row per arm, the columns of the page, text as shown; no index column."""
        import pandas as pd

        records = []
        for row in self.rows:
            records.append([
                row.experiment,
                row.arm + (f"; {row.note}" if row.note else ""),
                row.this_report,
                "; ".join(f"{text}{footnote.marker}" for text, footnote in row.student),
                "; ".join(f"{text}{footnote.marker}" for text, footnote in row.published),
                " ".join(row.verdict),
            ])
        return pd.DataFrame(records, columns=self.columns)

    def footnote_lines(self) -> list[str]:
        return [f"{footnote.marker} {footnote.reference.describe()}" for footnote in self.footnotes]

    def _caption(self) -> str:
        caption = ("Test accuracy in %: mean +- standard deviation over the seeds run (n). "
                   "Verdicts use 95% intervals over the test images and the seeds.")
        if _is_reduced(self.profile):
            caption += (f" At the {self.profile.name} profile a fix's accuracy is set against the "
                        f"student's full-budget number: \"below\" is expected there and says nothing "
                        f"against the fix; the comparison with our run of the student's set-up, at the "
                        f"same budget, is the one that counts.")
        return caption

    def _repr_html_(self) -> str:
        escape = html.escape

        def quoted(pairs) -> str:
            return "<br>".join(f'{escape(text)}<sup><a href="#summary-note-{footnote.number}">'
                               f"{escape(footnote.marker)}</a></sup>" for text, footnote in pairs)

        header = "".join(f'<th class="col-{index}">{escape(name)}</th>'
                         for index, name in enumerate(self.columns))
        body = []
        for experiment, rows in self.groups:
            span = len(rows)
            for index, row in enumerate(rows):
                cells = []
                if index == 0:
                    cells.append(f'<td rowspan="{span}" class="experiment">{escape(experiment)}</td>')
                arm = escape(row.arm)
                if row.note:
                    arm += f'<br><span class="role role-{row.role.replace(" ", "-")}">{escape(row.note)}</span>'
                cells.append(f"<td>{arm}</td>")
                cells.append(f'<td class="number{" not-run" if row.this_report == NOT_RUN else ""}">'
                             f"{escape(row.this_report)}</td>")
                if index == 0:
                    cells.append(f'<td rowspan="{span}">{quoted(row.student)}</td>')
                    cells.append(f'<td rowspan="{span}">{quoted(row.published)}</td>')
                cells.append("<td>" + "<br>".join(escape(sentence) for sentence in row.verdict) + "</td>")
                opening = '<tr class="group-start">' if index == 0 else "<tr>"
                body.append(opening + "".join(cells) + "</tr>")
        notes = "".join(f'<li id="summary-note-{footnote.number}">{escape(footnote.marker)} '
                        f"{escape(footnote.reference.describe())}</li>" for footnote in self.footnotes)
        return (
            f"<style>{_TABLE_CSS}</style>"
            f'<table class="summary-table"><caption>{escape(self._caption())}</caption>'
            f"<thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            f'<ol class="summary-notes">{notes}</ol>'
        )

    def __repr__(self) -> str:
        lines = [" | ".join(self.columns)]
        for values in self.to_frame().itertuples(index=False):
            lines.append(" | ".join(str(value) for value in values))
        return "\n".join(lines + [""] + self.footnote_lines())


# Wraps every cell within the page: fixed column shares, long words broken.
_TABLE_CSS = """
table.summary-table { table-layout: fixed; width: 100%; max-width: 100%; border-collapse: collapse;
  font-size: 0.82rem; line-height: 1.4; }
table.summary-table caption { caption-side: top; text-align: left; margin-bottom: 0.4rem; }
table.summary-table th, table.summary-table td { overflow-wrap: anywhere; white-space: normal;
  vertical-align: top; text-align: left; padding: 0.3rem 0.45rem; }
table.summary-table th { overflow-wrap: break-word; }
table.summary-table th.col-0 { width: 12%; } table.summary-table th.col-1 { width: 19%; }
table.summary-table th.col-2 { width: 13%; } table.summary-table th.col-3 { width: 9%; }
table.summary-table th.col-4 { width: 10%; } table.summary-table th.col-5 { width: 37%; }
table.summary-table tr.group-start > td { border-top: 2px solid #59636e; }
table.summary-table td.experiment { font-weight: 600; }
table.summary-table .role { font-size: 0.9em; color: #59636e; font-style: italic; }
table.summary-table .not-run { color: #59636e; font-style: italic; }
table.summary-table td.number { font-variant-numeric: tabular-nums; }
table.summary-table sup { font-size: 0.75em; }
ol.summary-notes { list-style: none; padding-left: 0; font-size: 0.8rem; overflow-wrap: anywhere; }
ol.summary-notes li { margin: 0.2rem 0; }
@media print {
  /* A long table flows over pages (its header repeats); a row never splits. */
  table.summary-table { font-size: 8pt; break-inside: auto; }
  table.summary-table tr { break-inside: avoid; }
  ol.summary-notes { font-size: 7.5pt; }
}
"""


def build_table(profile: Profile,
                groups: Sequence[tuple[ExperimentPlan, Mapping[tuple, studies.ArmResult]]]) -> SummaryTable:
    """Assembles the table from plans and their (cached) results; reads nothing.

    Args:
        profile: The profile the results belong to (names the column).
        groups: Each experiment's plan with ``{key: ArmResult}``; a key
            missing from the mapping, or an ArmResult without records,
            shows as "not run".

    Used in: 08_summary (through :func:`summary_table`) and the tests.
    """
    footnotes: list[Footnote] = []
    table_groups = []
    machines: dict[str, int] = {}
    for plan, results in groups:
        student_refs = references_for(plan.experiment, "student")
        published_refs = references_for(plan.experiment, "published")

        def noted(references):
            pairs = []
            for reference in references:
                footnote = Footnote(len(footnotes) + 1, reference)
                footnotes.append(footnote)
                pairs.append((_quoted(reference), footnote))
            return tuple(pairs)

        student_pairs, published_pairs = noted(student_refs), noted(published_refs)
        if plan.missing is not None:
            table_groups.append((plan.experiment, [SummaryRow(
                experiment=plan.experiment, arm="all arms", note="", role=REFERENCE,
                this_report=NOT_RUN, student=student_pairs, published=published_pairs,
                verdict=(plan.missing[:1].upper() + plan.missing[1:] + ".",))]))
            continue
        student_quoted = student_number(student_refs)
        setup_plans = [row for row in plan.rows if row.role == STUDENT_SETUP and row.key in plan.arms]
        setup = results.get(setup_plans[0].key) if setup_plans else None
        rows = []
        for row_plan in plan.rows:
            if row_plan.key not in plan.arms:
                continue
            result = results.get(row_plan.key)
            for record in (result.completed if result is not None else []):
                hardware = (record.environment or {}).get("hardware") or {}
                gpus = ", ".join(hardware.get("gpus") or []) or "no GPU"
                machine = f"{hardware.get('cpu', 'unknown CPU')} ({gpus})"
                machines[machine] = machines.get(machine, 0) + 1
            rows.append(SummaryRow(
                experiment=plan.experiment,
                arm=plan.arms[row_plan.key].label,
                note=row_plan.note,
                role=row_plan.role,
                this_report=this_report_cell(result),
                student=student_pairs,
                published=published_pairs,
                verdict=tuple(verdict_cell(row_plan, result, student_quoted, setup, bool(setup_plans))),
            ))
        table_groups.append((plan.experiment, rows))
    return SummaryTable(profile, table_groups, footnotes, machines)


def summary_table(profile: Profile, data_dir=None, runs_dir=None) -> SummaryTable:
    """The summary table of ``profile``'s headline arms, read from the run cache.

    Trains nothing: every arm is read with ``studies.run_study(...,
    cached_only=True)`` over the profile's seeds; runs not in the cache show
    as "not run". When the data cannot be found (run ids hash the data),
    every row shows "not run" with the reason.

    Returns:
        A :class:`SummaryTable` (HTML in the notebook and the report;
        ``to_frame()`` for a DataFrame).

    Used in: 08_summary
    """
    from helpers.data import CifarDataError

    groups = []
    for plan in headline_experiments(profile, data_dir, runs_dir):
        arms = plan.shown_arms()
        if plan.missing is None and arms:
            try:
                results = studies.run_study(arms, profile, runs_dir, progress=False, cached_only=True)
            except CifarDataError as error:
                plan = dataclasses.replace(plan, missing=f"not run: the data cannot be found ({error})")
                results = {}
        else:
            results = {}
        groups.append((plan, results))
    return build_table(profile, groups)


def stamp(profile: Profile, table: SummaryTable | None = None) -> str:
    """Profile, date, the machine reading the records, software and git revision, in one line.

    From ``helpers.environment.stamp()``, the one machine stamp the run
    records and the report also use; imports no TensorFlow. With ``table``,
    also the machines that trained the runs it shows, from their records.

    Used in: 08_summary
    """
    machine = environment.stamp()
    hardware, versions, git = machine["hardware"], machine["versions"], machine["git"]
    gpus = hardware.get("gpus") or []
    revision = git.get("revision")
    revision_text = (f"git {revision[:10]}{' (uncommitted changes)' if git.get('dirty') else ''}"
                     if revision else "not a git checkout")
    software = ", ".join(f"{name} {version}" for name, version in
                         (("Python", versions.get("python")), ("TensorFlow", versions.get("tensorflow")),
                          ("Keras", versions.get("keras")), ("numpy", versions.get("numpy"))) if version)
    text = (f"Profile {profile.name}; summary read "
            f"{_datetime.datetime.now(_datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
            f"{hardware.get('cpu')} ({hardware.get('logical_cores')} logical cores, "
            f"{'GPUs: ' + ', '.join(gpus) if gpus else 'no GPU'}); {software}; {revision_text}.")
    if table is not None and table.machines:
        trained = "; ".join(f"{machine}: {count} run{'s' if count != 1 else ''}"
                            for machine, count in sorted(table.machines.items()))
        text += f" Runs trained on {trained}."
    return text
