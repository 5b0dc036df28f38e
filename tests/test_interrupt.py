"""A run killed mid-way (a real process, SIGKILL) resumes and ends bit-identical (CPU)."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys, torch
    from helpers import data, models, train
    torch.manual_seed(0)
    model = models.create("smallcnn", 10, width=16)
    s = data.per_class(data.mnist5k(), 30)
    ckpt = sys.argv[2] if sys.argv[2] != "-" else None
    train.fit(model, s, s, epochs=4, lr=3e-3, batch_size=16, augment=True, checkpoint=ckpt,
              checkpoint_every=0, progress=False)
    torch.save(model.state_dict(), sys.argv[1])
""")


def _python(args, env):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *args], env=env)


def test_killed_fit_resumes_to_the_same_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ckpt = tmp_path / "fit.ckpt"
    p = _python([str(tmp_path / "killed.pt"), str(ckpt)], env)
    deadline = time.time() + 600
    while not ckpt.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.05)
    if p.poll() is not None:
        pytest.fail("the run finished before it could be killed: make it longer")
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert ckpt.exists(), "no checkpoint was written within the time limit"
    assert not (tmp_path / "killed.pt").exists()
    epoch = torch.load(ckpt, weights_only=False)["epoch"]
    assert 1 <= epoch < 4
    assert _python([str(tmp_path / "resumed.pt"), str(ckpt)], env).wait() == 0
    assert _python([str(tmp_path / "straight.pt"), "-"], env).wait() == 0
    a = torch.load(tmp_path / "resumed.pt")
    b = torch.load(tmp_path / "straight.pt")
    for k in a:
        assert torch.equal(a[k], b[k]), k
