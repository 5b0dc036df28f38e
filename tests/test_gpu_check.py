"""bench/gpu_check.py: its plan matches the README's counts, its GPU-hours arithmetic, and its
CPU dry run."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def readme_counts() -> dict:
    """README "What the full profile asks for": chapter -> (training, inference) image-passes."""
    rows = re.findall(r"^\| ([a-z ]+) \|.*\| ([\d.]+)(?: M)? \| ([\d.]+) M", (ROOT / "README.md")
                      .read_text(), flags=re.MULTILINE)
    return {name.replace(" ", "_"): (float(t) * 1e6, float(i) * 1e6) for name, t, i in rows}


def test_plan_sums_to_the_readme_counts():
    readme = readme_counts()
    plan: dict = {}
    for chapter, train, _, infer, _, _ in gpu_check.PLAN:
        t, i = plan.get(chapter, (0.0, 0.0))
        plan[chapter] = (t + train, i + infer)
    assert set(plan) == set(readme) == {"tour", "separability", "transferability", "tunnel",
                                         "double_descent"}
    for chapter, counts in readme.items():
        assert plan[chapter] == pytest.approx(counts, rel=0.02), chapter


def test_gpu_hours_divide_each_share_by_its_speed():
    names = {n for row in gpu_check.PLAN for n in row[2] + row[4]}
    speeds = {f"{n}@{res}": {"train": 1000.0, "extract": 4000.0}
              for n in names for res in (32, 224)}
    rows = gpu_check.gpu_hours(speeds)
    for row, (_, train, _, infer, _, _) in zip(rows, gpu_check.PLAN):
        assert row["GPU-hours"] == pytest.approx((train / 1000 + infer / 4000) / 3600, abs=0.01)
        assert row["not measured"] == []
    # a model twice in a list takes two shares: vit_tiny trains 4 of the zoo's 10 shares
    speeds["zoo:vit_tiny@32"]["train"] = 500.0
    tour = gpu_check.gpu_hours(speeds)[0]
    assert tour["GPU-hours"] == pytest.approx(
        (1.4e6 * 0.6 / 1000 + 1.4e6 * 0.4 / 500 + 0.1e6 / 4000) / 3600, abs=0.01)
    del speeds["dd:resnet18@32"]
    assert gpu_check.gpu_hours(speeds)[-1]["GPU-hours"] is None
    del speeds["zoo:vit_tiny@32"]
    tour = gpu_check.gpu_hours(speeds)[0]
    assert tour["GPU-hours"] is None
    assert tour["not measured"] == ["zoo:vit_tiny (train)", "zoo:vit_tiny (extract)"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU exit")
def test_without_a_gpu_it_exits_3_with_one_line(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path)]) == 3
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.slow
def test_the_cpu_dry_run_goes_through_every_step_but_the_extras(tmp_path):
    """The one call a GPU session makes, rehearsed at tiny sizes (the extras have their own
    dry runs; ~1 min)."""
    env = {**os.environ, "HELPERS_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--cpu-dry-run", "--skip-extras",
                           "--out", str(tmp_path / "out")], cwd=ROOT, env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["mode"].startswith("cpu dry run") and report["cuda_tests"]["returncode"] in (0, 5)
    assert {k.split("@")[0] for k in report["throughput"]} == {
        "zoo:resnet10t", "dd:resnet18", "mobilenetv2_100.ra_in1k", "vit_base_patch16_224.orig_in21k"}
    assert all(v > 0 for speeds in report["throughput"].values() for v in speeds.values())
    assert report["chapter"]["returncode"] == 0 and report["chapter"]["error"] is None
    assert (tmp_path / "out" / "chapters" / "separability.ipynb").exists()
    assert "| chapter | training passes |" in (tmp_path / "out" / "gpu_check.md").read_text()
