"""Every run of a profile's series: which exist, what they cost, and their committed copy.

``python -m helpers records --profile standard`` lists, per notebook, the
runs the series needs (every arm of every study for every seed, through the
same ``helpers.studies`` functions the notebooks call), which of them are
finished in the run cache, and the sum of their records' wall times: the
measured budget. A run two notebooks share (02's step decay is 03's
ResNet-20 and 05's step decay) counts once, for the first notebook.

``--export`` copies the finished records (``record.json`` only) and the LR
range test into ``records/<profile>/``, the committed folder that ``report
--render-only`` reads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

from helpers import committed
from helpers import config as project_config
from helpers import profiles, studies
from helpers.records import RECORD_FILE_NAME

NOTEBOOKS = ("01", "02", "03", "04", "05", "06", "07")


@dataclasses.dataclass
class SeriesRun:
    """One run the series needs."""

    notebook: str
    label: str
    seed: int
    config: object
    record: object = None  # the finished RunRecord, or None

    @property
    def done(self) -> bool:
        return self.record is not None


def series_arms(profile: profiles.Profile, data_dir=None, runs_dir=None) -> tuple[dict[str, dict], object]:
    """{notebook: {key: Arm}} for the whole series, and 05's range test (None if not run).

    05's arms take their rates from the LR range test: without a cached one
    05 lists no arms.
    """
    base = studies.cyclical_base(profile, data_dir)
    range_test = studies.learning_rate_range_test(base, profile.lr_find_iterations, runs_dir,
                                                  progress=False, cached_only=True)
    cyclical = {}
    if range_test is not None:
        rates = studies.range_test_reading(range_test)
        cyclical = studies.cyclical_arms(profile, rates.base_learning_rate, rates.max_learning_rate, data_dir,
                                         high_learning_rate=rates.high_learning_rate)
    arms = {
        "01": studies.vgg_arms(profile, data_dir),
        "02": studies.schedule_arms(profile, data_dir),
        "03": {**studies.degradation_arms(profile, data_dir), **studies.depth_arms(profile, data_dir),
               **studies.stem_arms(profile, data_dir), **studies.warmup_arms(profile, data_dir)},
        "04": studies.dropout_arms(profile, data_dir),
        "05": cyclical,
        "06": studies.gate_arms(profile, data_dir),
        "07": studies.cifar100_arms(profile, data_dir),
    }
    return arms, range_test


def series_runs(profile: profiles.Profile, data_dir=None, runs_dir=None) -> tuple[list[SeriesRun], object]:
    """Every distinct run of the series with its finished record (or None), and 05's range test."""
    arms, range_test = series_arms(profile, data_dir, runs_dir)
    runs, seen = [], set()
    for notebook, keyed in arms.items():
        for arm in keyed.values():
            for seed in arm.seeds_in(profile):
                config = arm.seeded(seed)
                identity = config.config_hash
                if identity in seen:
                    continue
                seen.add(identity)
                runs.append(SeriesRun(notebook, arm.label, seed, config, studies.cached_record(config, runs_dir)))
    return runs, range_test


def budget(runs: list[SeriesRun]) -> dict[str, dict]:
    """Per notebook: runs needed, runs finished, and the finished records' wall seconds."""
    table = {}
    for notebook in NOTEBOOKS:
        mine = [run for run in runs if run.notebook == notebook]
        done = [run for run in mine if run.done]
        table[notebook] = {
            "runs": len(mine), "finished": len(done),
            "wall_seconds": round(sum(run.record.wall_seconds or 0.0 for run in done), 1),
            "instruction_sets": sorted({_instruction_set(run.record) for run in done} - {""}),
        }
    return table


def _instruction_set(record) -> str:
    hardware = (record.environment or {}).get("hardware") or {}
    value = hardware.get("instruction_set")
    if isinstance(value, dict):
        value = value.get("widest") or value.get("name")
    return str(value or "")


def export(runs: list[SeriesRun], range_test, profile: profiles.Profile, target: Path, runs_dir=None,
           data_dir=None) -> dict:
    """Copies the finished records (JSON only) and 05's range test into ``target``.

    Records already there are replaced; a record there that the series does
    not need is named in the result ("stale"), never deleted.
    """
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for run in runs:
        if not run.done:
            continue
        destination = target / run.record.run_id / RECORD_FILE_NAME
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run.record.path, destination)
        copied.append(run.record.run_id)
    if range_test is not None:
        base = studies.cyclical_base(profile, data_dir)
        source = studies.range_test_path(base, profile.lr_find_iterations, runs_dir)
        if source.is_file():
            destination = target / committed.RANGE_TEST_DIR / source.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
    wanted = set(copied)
    stale = sorted(path.parent.name for path in target.glob(f"*/{RECORD_FILE_NAME}") if path.parent.name not in wanted)
    return {"copied": len(copied), "stale": stale, "folder": str(target)}


# -- the command -------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", choices=profiles.PROFILE_NAMES, required=True)
    parser.add_argument("--data-dir", default=None,
                        help="directory holding the CIFAR files (run ids hash the data); default: "
                             "$CIFAR_DATA_DIR, else the Keras download")
    parser.add_argument("--runs-dir", default=None, help="the run cache to read (default: runs/)")
    parser.add_argument("--export", action="store_true",
                        help="copy the finished records into records/<profile>/ (JSON only)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def records_main(args: argparse.Namespace) -> int:
    """Handler of ``python -m helpers records``."""
    profile = profiles.get_profile(args.profile)
    runs_dir = Path(args.runs_dir) if args.runs_dir else project_config.RUNS_DIR
    runs, range_test = series_runs(profile, args.data_dir, runs_dir)
    table = budget(runs)
    result = {"profile": profile.name, "runs_dir": str(runs_dir), "notebooks": table,
              "range_test": range_test is not None,
              "total": {"runs": len(runs), "finished": sum(row["finished"] for row in table.values()),
                        "wall_seconds": round(sum(row["wall_seconds"] for row in table.values()), 1)},
              "missing": [f"{run.notebook} {run.label}, seed {run.seed}" for run in runs if not run.done]}
    if args.export:
        result["export"] = export(runs, range_test, profile, committed.records_dir(profile.name), runs_dir,
                                  args.data_dir)
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"profile {profile.name}: {result['total']['finished']} of {len(runs)} runs finished in {runs_dir}")
    for notebook, row in table.items():
        print(f"  {notebook}: {row['finished']:>3} of {row['runs']:>3} runs, {row['wall_seconds'] / 60:7.1f} min"
              + (f"  ({', '.join(row['instruction_sets'])})" if row["instruction_sets"] else ""))
    print(f"  total: {result['total']['wall_seconds'] / 3600:.2f} h of recorded wall time")
    if range_test is None:
        print("  05: the LR range test is not in the cache, so 05's arms are not listed yet")
    if "export" in result:
        export_result = result["export"]
        print(f"exported {export_result['copied']} records to {export_result['folder']}"
              + (f"; not in the series (left alone): {', '.join(export_result['stale'])}" if export_result["stale"]
                 else ""))
    return 0
