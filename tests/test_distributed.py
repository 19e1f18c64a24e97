"""The engine under tf.distribute, on this CPU.

Each set-up runs in fresh processes: logical devices and multi-worker
collectives must be configured before TensorFlow initialises. Runs are one
epoch of four steps of a 1/8-width VGG-11.
"""

from __future__ import annotations

import json
import subprocess
import textwrap

import pytest

from tests.engine_helpers import PROJECT_ROOT, free_ports, python_command, subprocess_env

RUN_AND_REPORT = textwrap.dedent(
    """
    import json, sys
    from helpers import engine
    {setup}
    from tests.engine_helpers import synthetic_cifar, tiny_config

    record = engine.run(tiny_config(strategy={strategy!r}, num_epochs=1), runs_dir=sys.argv[1],
                        data=synthetic_cifar(), progress="lines")
    print(json.dumps({{
        "status": record.status,
        "run_id": record.run_id,
        "replicas": record.environment["replicas"],
        "epochs": record.history["epoch"],
        "loss": record.history["loss"],
        "test": record.test,
        "norms": len(record.diagnostics.get("gradient_norms", {{}})),
        "path": str(record.path),
    }}))
    """
)


def _last_json_line(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_mirrored_strategy_over_two_logical_cpus_completes(tmp_path):
    code = RUN_AND_REPORT.format(setup="engine.split_cpu_into_logical_devices(2)", strategy="mirrored")
    result = subprocess.run([*python_command(code), str(tmp_path)], cwd=PROJECT_ROOT,
                            env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = _last_json_line(result.stdout)
    assert report["status"] == "completed"
    assert report["replicas"] == 2
    assert report["epochs"] == [1]
    assert set(report["test"]) == {"loss", "accuracy"}
    assert report["norms"] == 9


def test_two_worker_processes_on_localhost_both_complete(tmp_path):
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    code = RUN_AND_REPORT.format(setup="", strategy="multiworker")
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [*python_command(code), str(tmp_path)], cwd=PROJECT_ROOT,
            env=subprocess_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        ))
    outputs = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=300)
            outputs.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for returncode, stdout, stderr in outputs:
        assert returncode == 0, stderr[-3000:]
    chief, worker = (_last_json_line(stdout) for _, stdout, _ in outputs)
    for report in (chief, worker):
        assert report["status"] == "completed"
        assert report["replicas"] == 2
        assert report["epochs"] == [1]
    # Synchronous training: both workers saw the same global loss.
    assert chief["loss"] == pytest.approx(worker["loss"], rel=1e-5)
    # The chief owns the run's record; the other worker keeps its own copy aside.
    assert chief["path"] == str(tmp_path / chief["run_id"] / "record.json")
    assert worker["path"] == str(tmp_path / chief["run_id"] / "worker-1" / "record.json")
