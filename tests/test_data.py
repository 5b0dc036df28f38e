"""Data: glyph rendering, digits, splits, variations (helpers.data)."""

import numpy as np
import pytest
import torch

from helpers import data


def test_glyphs_same_seed_identical_other_seed_different():
    a = data.glyphs(chars="AB7", per_pair=2, seed=3)
    b = data.glyphs(chars="AB7", per_pair=2, seed=3)
    c = data.glyphs(chars="AB7", per_pair=2, seed=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_glyphs_label_by_char_or_font():
    fonts = ["DejaVuSans", "cmr10", "STIXGeneral"]
    by_char = data.glyphs(chars="XY", fonts=fonts, per_pair=3)
    by_font = data.glyphs(chars="XY", fonts=fonts, per_pair=3, label="font")
    assert by_char.classes == ["X", "Y"] and sorted(by_font.classes) == sorted(fonts)
    assert len(by_char) == len(by_font) == 2 * 3 * 3
    assert torch.equal(by_char.images, by_font.images)
    assert (by_font.counts() == 6).all()
    # each image's label matches the attribute it was rendered with
    assert [by_font.classes[i] for i in by_font.labels] == list(by_font.attrs["font"])


def test_glyph_pixels_are_centred_and_fill_the_box():
    s = data.glyphs(chars="O", fonts=["DejaVuSans"], per_pair=4, resolution=32,
                    jitter={"shift": 0, "rotation": 0, "scale": 0})
    ink = s.images[:, 0].float().numpy()
    rows = np.flatnonzero(ink.sum(axis=(0, 2)))
    assert rows.max() - rows.min() + 1 >= 24  # scaled to its bounding box (80 % of 32 px)
    centre = (ink.sum(0) * np.arange(32)[:, None]).sum() / ink.sum()
    assert abs(centre - 15.5) < 1.5


def test_font_without_the_character_is_a_clear_error():
    with pytest.raises(ValueError, match="fonts: .*has no glyph"):
        data.glyphs(chars="\u4e2d", fonts=["DejaVuSans"], per_pair=1)
    with pytest.raises(ValueError, match="fonts: unknown font 'NoSuchFont'"):
        data.glyphs(chars="A", fonts=["NoSuchFont"], per_pair=1)
    with pytest.raises(FileNotFoundError, match="font_dirs"):
        data.find_fonts(font_dirs=["/no/such/dir"])


def test_handwritten_digits(mnist):
    assert len(mnist) == 5000 and (mnist.counts() == 500).all()
    assert mnist.images.shape[1:] == (1, 32, 32) and mnist.images.dtype == torch.uint8
    small = data.sklearn_digits(resolution=16)
    assert len(small) == 1797 and small.resolution == 16 and small.images.max() == 255


def test_seen_unseen_split_is_disjoint_and_complete(mnist):
    seen, unseen = data.split_classes(mnist, unseen=3, seed=1)
    assert set(seen.classes).isdisjoint(unseen.classes)
    assert set(seen.classes) | set(unseen.classes) == set(mnist.classes)
    assert len(seen) + len(unseen) == len(mnist)
    assert [unseen.classes[i] for i in unseen.labels] == [
        mnist.classes[i] for i in mnist.labels if mnist.classes[i] in unseen.classes]
    with pytest.raises(ValueError, match="overlap"):
        data.split_classes(mnist, unseen=["1", "2"], seen=["2", "3"])


def test_train_test_split_is_stratified_and_disjoint(mnist):
    a, b = data.train_test(mnist, test=0.2, seed=0)
    assert (b.counts() == 100).all() and len(a) + len(b) == len(mnist)
    pixels_a = {bytes(x) for x in a.images.numpy().reshape(len(a), -1)}
    assert sum(bytes(x) in pixels_a for x in b.images.numpy().reshape(len(b), -1)) < 5


def test_label_noise_flips_exactly_the_mask(mnist):
    noisy, flipped = data.label_noise(mnist, 0.2, seed=0)
    changed = (noisy.labels != mnist.labels).numpy()
    assert np.array_equal(changed, flipped)
    assert 0.18 < flipped.mean() < 0.22


def test_variations(mnist):
    s = data.per_class(mnist, 3)
    assert torch.equal(data.invert(data.invert(s)).images, s.images)
    assert data.resize(s, 16).resolution == 16
    assert (data.rotate(s, 0).images.int() - s.images.int()).abs().max() <= 1
    assert data.add_noise(s, 0.1, seed=1).fingerprint != s.fingerprint


def test_mixed_sizes_are_refused(mnist):
    with pytest.raises(ValueError, match="mixed sizes"):
        data.concat([mnist, data.resize(mnist, 16)])


def test_unknown_dataset_name_suggests():
    with pytest.raises(ValueError, match="did you mean 'mnist5k'"):
        data.load("mnist5")


def test_data_problems_are_one_clear_line(tmp_path, mnist):
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="dataset path .* does not exist"):
        data.image_folder(tmp_path / "missing")
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        data.image_folder(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "x.png")
    with pytest.raises(ValueError, match=r"empty classes \['b'\]"):
        data.image_folder(tmp_path)
    with pytest.raises(ValueError, match=r"unseen classes overlap the seen ones: \['3'\]"):
        data.split_classes(mnist, ["3", "4"], seen=["1", "2", "3"])
    with pytest.raises(ValueError, match="class '7' is empty"):
        data.train_test(mnist.subset(mnist.labels != 7), test=5)
