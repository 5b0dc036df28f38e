"""The training loop: history, checkpoint and exact resume (helpers.train)."""

import pandas as pd
import pytest
import torch

from helpers import models, train


def _model():
    torch.manual_seed(0)
    return models.create("smallcnn", 10, width=8)


def test_history_has_one_row_per_epoch_and_learns(small_set):
    model = _model()
    h = train.fit(model, small_set, small_set, epochs=3, lr=3e-3, batch_size=16, progress=False)
    assert list(h.epoch) == [1, 2, 3]
    assert {"train_loss", "train_err", "test_loss", "test_err", "lr", "seconds"} <= set(h.columns)
    assert h.train_loss.iloc[-1] < h.train_loss.iloc[0]
    loss, err = train.evaluate(model, small_set)
    assert loss == pytest.approx(h.test_loss.iloc[-1]) and err == pytest.approx(h.test_err.iloc[-1])


def test_interrupted_then_resumed_fit_equals_uninterrupted(small_set, tmp_path, monkeypatch):
    kw = dict(epochs=3, lr=3e-3, batch_size=16, augment=True, progress=False)
    straight = _model()
    h1 = train.fit(straight, small_set, small_set, **kw)

    calls = {"n": 0}
    real = train._predict

    def dies_in_epoch_two(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    ckpt = tmp_path / "run.ckpt"
    monkeypatch.setattr(train, "_predict", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train.fit(_model(), small_set, small_set, checkpoint=ckpt, checkpoint_every=0, **kw)
    monkeypatch.setattr(train, "_predict", real)
    assert torch.load(ckpt, weights_only=False)["epoch"] == 1

    resumed = _model()
    h2 = train.fit(resumed, small_set, small_set, checkpoint=ckpt, **kw)
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    assert h1.drop(columns="seconds").equals(h2.drop(columns="seconds"))


def test_checkpoints_are_spaced_in_time_but_the_last_epoch_is_always_saved(small_set, tmp_path,
                                                                          monkeypatch):
    saves = []
    real = train._save
    monkeypatch.setattr(train, "_save", lambda path, state: (saves.append(state["epoch"]),
                                                             real(path, state)))
    kw = dict(epochs=3, batch_size=32, progress=False)
    train.fit(_model(), small_set, checkpoint=tmp_path / "a.ckpt", checkpoint_every=3600, **kw)
    assert saves == [3]
    train.fit(_model(), small_set, checkpoint=tmp_path / "b.ckpt", checkpoint_every=0, **kw)
    assert saves == [3, 1, 2, 3]


def test_optimizers_are_fused_and_match_the_per_tensor_loop():
    for name, cls in (("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                      ("sgd", torch.optim.SGD)):
        a, b = torch.nn.Linear(6, 3), torch.nn.Linear(6, 3)
        b.load_state_dict(a.state_dict())
        fused = train.make_optimizer(name, a.parameters(), lr=0.1, weight_decay=0.01)
        loop = cls(b.parameters(), lr=0.1, weight_decay=0.01, foreach=False,
                   **({"momentum": 0.9} if name == "sgd" else {}))
        assert fused.defaults["fused"]
        x = torch.randn(16, 6)
        for _ in range(3):
            for m, opt in ((a, fused), (b, loop)):
                opt.zero_grad()
                m(x).square().mean().backward()
                opt.step()
        torch.testing.assert_close(a.weight, b.weight)
    with pytest.raises(ValueError, match="optimizer"):
        train.make_optimizer("lion", a.parameters(), lr=0.1)


def test_finished_checkpoint_returns_without_training(small_set, tmp_path):
    ckpt = tmp_path / "done.ckpt"
    train.fit(_model(), small_set, epochs=1, batch_size=32, checkpoint=ckpt, progress=False)
    stamp = ckpt.stat().st_mtime_ns
    again = _model()
    train.fit(again, small_set, epochs=1, batch_size=32, checkpoint=ckpt, progress=False)
    assert ckpt.stat().st_mtime_ns == stamp
    state = torch.load(ckpt, weights_only=False)
    assert torch.equal(again.fc.weight, state["model"]["fc.weight"])
    assert "optimizer" not in state and "scheduler" not in state  # nothing resumes it


def test_a_finished_checkpoint_drops_adams_moments(small_set, tmp_path, monkeypatch):
    """Adam keeps two moments per weight: the unfinished checkpoint (epoch 1 of 2) carries them,
    the finished one (2 of 2) does not."""
    sizes = {}
    real = train._save

    def save(path, state):
        real(path, state)
        sizes[state["epoch"]] = path.stat().st_size

    monkeypatch.setattr(train, "_save", save)
    train.fit(_model(), small_set, epochs=2, batch_size=32, optimizer="adam",
              checkpoint=tmp_path / "a.ckpt", checkpoint_every=0, progress=False)
    weights = sum(p.numel() * 4 for p in _model().parameters())
    assert sizes[1] - sizes[2] >= 2 * weights  # the moments, with their own overhead


def test_changed_settings_do_not_resume_a_foreign_checkpoint(small_set, tmp_path):
    ckpt = tmp_path / "a.ckpt"
    train.fit(_model(), small_set, epochs=1, lr=1e-3, checkpoint=ckpt, progress=False)
    resumed, fresh = _model(), _model()
    train.fit(resumed, small_set, epochs=1, lr=5e-3, checkpoint=ckpt, progress=False)
    train.fit(fresh, small_set, epochs=1, lr=5e-3, progress=False)
    assert torch.equal(resumed.fc.weight, fresh.fc.weight)  # trained afresh, new settings


def test_stop_at_ends_at_the_first_epoch_reaching_the_accuracy_and_stays_stopped(small_set,
                                                                                  tmp_path):
    full = train.fit(_model(), small_set, small_set, epochs=8, lr=3e-3, batch_size=16,
                     progress=False)
    acc = 1 - full.test_err
    level = float(acc.iloc[2])  # reached at epoch 3 at the latest
    first = int(acc.ge(level).to_numpy().argmax()) + 1
    ckpt = tmp_path / "stop.ckpt"
    model = _model()
    h = train.fit(model, small_set, small_set, epochs=8, lr=3e-3, batch_size=16, stop_at=level,
                  checkpoint=ckpt, progress=False)
    assert list(h.epoch) == list(range(1, first + 1))
    assert h.test_err.tolist() == pytest.approx(full.test_err.iloc[:first].tolist())
    again = train.fit(_model(), small_set, small_set, epochs=8, lr=3e-3, batch_size=16,
                      stop_at=level, checkpoint=ckpt, progress=False)
    assert len(again) == first  # the rerun reads the stopped run, trains no further
    with pytest.raises(ValueError, match="stop_at"):
        train.fit(_model(), small_set, epochs=1, stop_at=0.9)


@pytest.mark.parametrize("bad,match", [({"epochs": 0}, "epochs"), ({"lr": -1}, "lr"),
                                       ({"optimizer": "lamb"}, "optimizer"),
                                       ({"schedule": "step"}, "schedule")])
def test_bad_settings_name_the_argument(small_set, bad, match):
    with pytest.raises(ValueError, match=match):
        train.fit(_model(), small_set, **bad)


def test_augmentation_is_reproducible_from_the_generator():
    x = torch.rand(4, 3, 16, 16)
    a = train.augment_batch(x, torch.Generator().manual_seed(1))
    b = train.augment_batch(x, torch.Generator().manual_seed(1))
    c = train.augment_batch(x, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", ["smallcnn", "resnet10t"])
def test_training_after_a_frozen_prefix_run_once_equals_running_it_every_step(
        small_set, monkeypatch, name):
    """The split path (frozen layers' outputs kept) trains the same weights and history as
    the whole model with the same layers frozen; eval_train measures the training set in
    evaluation mode after each epoch."""
    kw = dict(epochs=2, lr=3e-3, batch_size=16, optimizer="adam", schedule="constant",
              eval_train=True, progress=False)

    def trained(limit):
        monkeypatch.setattr(train, "PREFIX_CACHE_BYTES", limit)
        torch.manual_seed(0)
        model = models.create(name, 10, img_size=28, **({"width": 8} if name == "smallcnn" else {}))
        models.freeze_first(model, 2)
        return model, train.fit(model, small_set, small_set, **kw)

    split_model, split_hist = trained(2**30)
    whole_model, whole_hist = trained(0)  # too small to keep: the whole model every step
    for (n, a), b in zip(split_model.state_dict().items(), whole_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=n)
    cols = ["train_loss", "train_err", "test_loss", "test_err"]
    pd.testing.assert_frame_equal(split_hist[cols], whole_hist[cols], rtol=1e-4)
    loss, err = train.evaluate(split_model, small_set)
    assert err == pytest.approx(split_hist.train_err.iloc[-1])
    assert loss == pytest.approx(split_hist.train_loss.iloc[-1], rel=1e-5)
    pred = split_hist.train_pred.iloc[-1]
    assert err == pytest.approx((pred != small_set.labels.numpy()).mean())
