"""helpers.summary: the designed summary table, its verdicts and the profile statement.

Synthetic run records with per-image scores stand in for the run cache: the
verdicts must follow the intervals (clearly above, not resolved, one seed),
never a hard-wired direction.
"""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest

from helpers import references, studies, summary
from helpers.profiles import get_profile
from helpers.records import RunRecord, pack_bits

QUICK = get_profile("quick")
IMAGES = 1000


def _scores(accuracy: float, seed: int, images: int = IMAGES) -> np.ndarray:
    """Exactly round(accuracy * images) correct images, in a seed-dependent order."""
    correct = np.zeros(images, dtype=np.uint8)
    correct[:round(accuracy * images)] = 1
    return np.random.default_rng(seed).permutation(correct)


def _record(arm: studies.Arm, seed: int, accuracy: float, status: str = "completed",
            top5: float | None = None, images: int = IMAGES) -> RunRecord:
    correct = _scores(accuracy, seed, images)
    predictions = {"images": images, "labels_digest": "same-images", "accuracy": pack_bits(correct)}
    test = {"accuracy": float(correct.mean())}
    if top5 is not None:
        top5_correct = _scores(top5, seed + 100, images)
        predictions["top5_accuracy"] = pack_bits(top5_correct)
        test["top5_accuracy"] = float(top5_correct.mean())
    return RunRecord(run_id=f"{arm.config.model}-{seed}", status=status, config=arm.seeded(seed),
                     history={"epoch": [1]}, test=test, test_predictions=predictions,
                     environment={"hardware": {"cpu": "Test CPU", "gpus": []}})


def _result(arm: studies.Arm, accuracies, seeds=(0, 1), **kwargs) -> studies.ArmResult:
    records = [None if accuracy is None else _record(arm, seed, accuracy, **kwargs)
               for seed, accuracy in zip(seeds, accuracies)]
    return studies.ArmResult(arm=arm, seeds=tuple(seeds), records=records)


def _vgg_plan(profile=QUICK) -> summary.ExperimentPlan:
    return next(plan for plan in summary.headline_experiments(profile) if plan.experiment.startswith("VGG"))


def _vgg_table(setup_accuracies, fix_accuracies, seeds=(0, 1), profile=QUICK) -> summary.SummaryTable:
    plan = _vgg_plan(profile)
    setup_key, fix_key = ("no_bn", "glorot", "sgd_high"), ("bn", "glorot", "sgd_high")
    results = {}
    if setup_accuracies is not None:
        results[setup_key] = _result(plan.arms[setup_key], setup_accuracies, seeds)
    if fix_accuracies is not None:
        results[fix_key] = _result(plan.arms[fix_key], fix_accuracies, seeds)
    return summary.build_table(profile, [(plan, results)])


def _fix_verdict(table: summary.SummaryTable) -> str:
    frame = table.to_frame()
    return frame.loc[frame["arm"].str.contains("fix:"), frame.columns[-1]].iloc[0]


class _Cells(HTMLParser):
    """Header cells, body rows (cells per row) and the footnote items of the table's HTML."""

    def __init__(self):
        super().__init__()
        self.headers, self.rows, self.notes = [], [], []
        self._where, self._text = None, []

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        if tag in ("th", "td", "li"):
            self._where, self._text = tag, []

    def handle_endtag(self, tag):
        if tag in ("th", "td", "li") and self._where == tag:
            text = "".join(self._text).strip()
            {"th": self.headers, "td": self._row, "li": self.notes}[tag].append(text)
            self._where = None
        if tag == "tr" and getattr(self, "_row", None):
            self.rows.append(self._row)
            self._row = []

    def handle_data(self, data):
        if self._where:
            self._text.append(data)


def _parse(table: summary.SummaryTable) -> _Cells:
    cells = _Cells()
    cells.feed(table._repr_html_())
    return cells


# -- verdicts ----------------------------------------------------------------


def test_a_fix_clearly_above_beats_the_student_and_the_setup():
    # (Per-seed differences of 80 and 81 points: seeds that agree exactly
    # would make the seeds' share of the interval exactly zero.)
    table = _vgg_table(setup_accuracies=(0.10, 0.11), fix_accuracies=(0.90, 0.92))
    verdict = _fix_verdict(table)
    assert verdict.startswith("Beats the student's 70%: 91.0% (95% interval ")
    assert "Beats our run of the student's set-up: +80.5 points (95% interval +" in verdict
    assert "n = 2 seeds, 1,000 test images" in verdict
    assert "does not resolve" not in verdict.lower()


def test_a_fix_clearly_below_the_student_number_says_below():
    table = _vgg_table(setup_accuracies=(0.10, 0.11), fix_accuracies=(0.40, 0.42))
    verdict = _fix_verdict(table)
    assert verdict.startswith("Below the student's 70%: 41.0% (95% interval ")
    assert "Beats our run of the student's set-up" in verdict


def test_an_unresolved_difference_states_no_direction():
    # 70.2% against the student's 70%, and two arms that differ by a point
    # with seeds that disagree: neither comparison is resolved.
    table = _vgg_table(setup_accuracies=(0.72, 0.67), fix_accuracies=(0.66, 0.742))
    verdict = _fix_verdict(table)
    assert verdict.startswith("Does not resolve against the student's 70%: 70.1% (95% interval ")
    assert "Does not resolve against our run of the student's set-up: +0.6 points (95% interval -" in verdict
    assert "Beats" not in verdict and "Below" not in verdict and "Falls below" not in verdict


def test_one_seed_never_claims_a_direction():
    # The same gap that is resolved with two seeds: one seed cannot support a claim.
    table = _vgg_table(setup_accuracies=(0.10,), fix_accuracies=(0.90,), seeds=(0,),
                       profile=get_profile("smoke"))
    verdict = _fix_verdict(table)
    assert verdict.startswith("Does not resolve against the student's 70%: 90.0%")
    assert "Does not resolve against our run of the student's set-up: +80.0 points" in verdict
    assert verdict.count("one seed cannot support a claim") == 2
    assert "Beats" not in verdict


def test_rows_without_runs_say_not_run():
    table = _vgg_table(setup_accuracies=None, fix_accuracies=(0.90, 0.91))
    frame = table.to_frame()
    setup_row = frame[frame["arm"].str.contains("the student's set-up")].iloc[0]
    assert setup_row["this report (quick)"] == "not run"
    assert setup_row[frame.columns[-1]] == "not run"
    # The fix still faces the student's number; the missing set-up is named.
    assert "Against our run of the student's set-up: not run." in _fix_verdict(table)
    nothing = _vgg_table(None, None).to_frame()
    assert set(nothing["this report (quick)"]) == {"not run"}
    assert set(nothing[frame.columns[-1]]) == {"not run"}


def test_records_without_per_image_scores_give_no_interval():
    plan = _vgg_plan()
    fix = _result(plan.arms[("bn", "glorot", "sgd_high")], (0.9, 0.9))
    for record in fix.records:
        record.test_predictions = {}
    table = summary.build_table(QUICK, [(plan, {("bn", "glorot", "sgd_high"): fix})])
    assert "no per-image test scores" in _fix_verdict(table)
    assert "90.0 +- 0.0 (n = 2)" in table.to_frame()["this report (quick)"].tolist()


# -- the table's design --------------------------------------------------------


def test_table_has_named_columns_no_index_and_full_footnotes():
    table = _vgg_table(setup_accuracies=(0.10, 0.11), fix_accuracies=(0.90, 0.92))
    frame = table.to_frame()
    expected = ["experiment", "arm", "this report (quick)", "student", "published",
                "fix vs the student's failure at this budget"]
    assert list(frame.columns) == expected
    cells = _parse(table)
    assert cells.headers == expected  # no index column, no unnamed header
    assert all(len(row) == 6 for row in cells.rows[:1])  # the first row carries the spans
    page = table._repr_html_()
    assert "..." not in page and "…" not in page
    # Every published and student number carries a marker and its footnote in full.
    vgg_refs = references.references_for("VGG-19 on CIFAR-10")
    assert len(cells.notes) == len(vgg_refs) == 2
    for reference, note in zip(vgg_refs, cells.notes):
        assert reference.source in note and reference.model in note
        assert f"{reference.value:g}%" in note
    assert "92.64%[2]" in frame["published"].iloc[0] and "70%[1]" in frame["student"].iloc[0]
    assert "<caption>" in page and "table-layout: fixed" in page
    assert "10.5 +- 0.7 (n = 2)" in frame["this report (quick)"].tolist()


def test_cifar100_rows_show_top5_and_both_student_numbers():
    plan = next(plan for plan in summary.headline_experiments(QUICK)
                if plan.experiment == "ResNet-18 on CIFAR-100")
    results = {key: _result(plan.arms[key], (0.3, 0.32), top5=0.6) for key in plan.shown_arms()}
    frame = summary.build_table(QUICK, [(plan, results)]).to_frame()
    assert frame["this report (quick)"].iloc[0] == "top-1 31.0 +- 1.4 (n = 2); top-5 60.0 +- 0.0 (n = 2)"
    assert frame["student"].iloc[0] == "top-1 49.4%[1]; top-5 78.42%[2]"
    assert frame["published"].iloc[0] == "top-1 75.61%[3]; top-5 93.05%[4]"
    assert "Below the student's 49.4%" in frame.iloc[1, -1]


def test_missing_seeds_and_divergence_are_shown():
    plan = _vgg_plan()
    key = ("no_bn", "glorot", "sgd_high")
    result = _result(plan.arms[key], (0.1, None))
    result.records[0].status = "diverged"
    frame = summary.build_table(QUICK, [(plan, {key: result})]).to_frame()
    assert frame["this report (quick)"].iloc[0] == "10.0 (n = 1); 1 of 2 seeds in the cache; 1 diverged"


def test_summary_table_reads_the_cache_only(monkeypatch):
    calls = []

    def fake_run_study(arms, profile, runs_dir=None, progress=True, cached_only=False):
        calls.append((tuple(arms), progress, cached_only))
        return {key: _result(arm, (0.5, 0.52)) for key, arm in arms.items()}

    monkeypatch.setattr(studies, "run_study", fake_run_study)
    monkeypatch.setattr(studies, "learning_rate_range_test", lambda *args, **kwargs: None)
    table = summary.summary_table(QUICK)
    assert calls and all(cached_only and not progress for _, progress, cached_only in calls)
    # Arms are looked up by key: the VGG study reads exactly its headline arms.
    assert calls[0][0] == (("no_bn", "glorot", "sgd_high"), ("no_bn", "glorot", "sgd_high", "plateau"),
                           ("bn", "glorot", "sgd_high"), ("bn", "glorot", "sgd_low"))
    frame = table.to_frame()
    cyclical = frame[frame["experiment"].str.startswith("Cyclical")].iloc[0]
    assert cyclical["this report (quick)"] == "not run" and "LR range test" in cyclical.iloc[-1]
    assert (frame["this report (quick)"] == "not run").sum() == 1
    assert "Runs trained on Test CPU (no GPU)" in summary.stamp(QUICK, table)


def test_the_cyclical_rows_say_when_the_data_is_missing(monkeypatch):
    # The LR range test's cached result is keyed by the data's identity: without
    # the data its rows say why they are empty, and the other rows are still planned.
    from helpers.data import CifarDataError

    def no_data(*args, **kwargs):
        raise CifarDataError("No cifar10 data found.")

    monkeypatch.setattr(studies, "learning_rate_range_test", no_data)
    plans = summary.headline_experiments(QUICK)
    cyclical = next(plan for plan in plans if plan.experiment.startswith("Cyclical"))
    assert cyclical.missing == "not run: the data cannot be found (No cifar10 data found.)"
    assert any(plan.experiment.startswith("VGG") and plan.missing is None for plan in plans)


def test_full_profile_lists_its_published_rows():
    experiments = [plan.experiment for plan in summary.headline_experiments(get_profile("full"))]
    for name in ("ResNet-56 on CIFAR-10", "ResNet-110 on CIFAR-10", "epsilon-ResNet-110 on CIFAR-10",
                 "ResNet-50 on CIFAR-100", "ResNet-110 on CIFAR-100"):
        assert name in experiments
    # Every experiment with a published number names the model and the source.
    for reference in references.REFERENCES:
        assert reference.model and reference.source
        assert reference.experiment in experiments or reference.experiment in (
            "Cyclical LR, ResNet-20 on CIFAR-10",)


# -- the profile statement and the stamp ---------------------------------------------


def test_profile_statement_says_what_each_profile_can_show():
    quick = summary.profile_statement(QUICK)
    assert quick.startswith("This report was run at the quick profile: 1,500 training images, 3-8 epochs")
    assert "2 seeds per arm, 1,000 of the 10,000 test images" in quick
    assert "+-3.1 points" in quick
    assert "not comparable with the student's or the published numbers" in quick
    smoke = summary.profile_statement(get_profile("smoke"))
    assert "With one seed per arm no comparison can be resolved" in smoke
    assert "not comparable" in smoke
    full = summary.profile_statement(get_profile("full"))
    assert "all 45,000 training images" in full and "3 seeds" in full
    assert "not comparable" not in full and "set beside the published" in full


def test_stamp_imports_no_tensorflow():
    code = ("import sys; from helpers import summary, profiles; "
            "text = summary.stamp(profiles.get_profile('quick')); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'imported'; print(text)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.match(r"Profile quick; summary read \d{4}-\d\d-\d\d \d\d:\d\d UTC on .+ \(\d+ logical cores",
                    result.stdout)
    assert "TensorFlow" in result.stdout


def test_reference_rejects_an_unknown_source_kind():
    with pytest.raises(ValueError, match="Received: 'paper'"):
        references.Reference("x", "paper", 1.0, "top-1", "model", "source")


def test_the_standard_profile_statement_reads_levels_against_the_student_with_the_budget_named():
    statement = summary.profile_statement(get_profile("standard"))
    assert statement.startswith("This report was run at the standard profile: all 45,000 training images, "
                                "2-4 epochs (07's ResNet-110 1) per run, 2 seeds per arm (3 in 02 and 05), all 10,000 test images")
    assert "two longer arms (12 and 20 epochs)" in statement and "beats it with far less training" in statement
    assert ("To fit its budget it leaves out 04's arm augmentation_weight_decay + classifier_dropout, "
            "04's arm none, 05's arm schedule + onecycle_short, 06's arm 20 + 8.0.") in statement
    assert "leaves out" not in summary.profile_statement(get_profile("quick"))
    assert "read its numbers for directions, not levels" not in statement
    assert "read its numbers for directions, not levels" in summary.profile_statement(QUICK)


def test_a_fix_at_a_longer_budget_is_compared_with_the_students_number_only():
    plan = next(plan for plan in summary.headline_experiments(QUICK) if plan.experiment == "ResNet-20 on CIFAR-10")
    long_row = next(row for row in plan.rows if row.key == ("schedule", "cosine", "long"))
    assert long_row.role == summary.FIX and not long_row.against_setup
    setup = _result(plan.arms[("schedule", "plateau")], (0.50, 0.52))
    long_result = _result(plan.arms[("schedule", "cosine", "long")], (0.90, 0.91))
    sentences = summary.verdict_cell(long_row, long_result, None, setup, True)
    assert sentences == [f"Not compared with our run of the student's set-up: it trains for {QUICK.long_epochs} "
                         f"epochs, the set-up for {QUICK.epochs_for('02')}."]
    step_row = next(row for row in plan.rows if row.key == ("schedule", "step"))
    assert "Not compared" not in " ".join(summary.verdict_cell(step_row, long_result, None, setup, True))
