"""Tests for the ImageNet pipeline on a tiny imagenet2012 that TFDS's real
builder prepared from generated archives (tests/imagenet_fixture.py)."""

import io
import subprocess

import numpy as np
import pytest
from PIL import Image

from algebranets.data import imagenet
from tests import imagenet_fixture, subprocess_env
from tests.imagenet_fixture import tiny_imagenet  # noqa: F401

# TensorFlow and TFDS come with the optional `vision` extra.
pytest.importorskip("tensorflow")
pytest.importorskip("tensorflow_datasets")

S, R = 16, 20  # image_size, eval_resize
MEAN = np.array(imagenet.MEAN_RGB)
STD = np.array(imagenet.STDDEV_RGB)


@pytest.fixture(scope="module")
def data_dir(tiny_imagenet):  # noqa: F811
  """The tiny imagenet2012's TFDS data_dir (tests/imagenet_fixture.py)."""
  return tiny_imagenet


@pytest.fixture(scope="module")
def examples(data_dir):
  return imagenet_fixture.read_manual_dir(
      imagenet_fixture.manual_dir_of(data_dir)
  )


@pytest.fixture(scope="module")
def references(examples):
  """preprocess_eval(S, R) of every archive image, eagerly, and labels."""
  tf = imagenet._tf()
  out = {}
  for split, items in examples.items():
    images = np.stack(
        [
            imagenet.preprocess_eval(tf.constant(data), S, R).numpy()
            for _, data, _ in items
        ]
    )
    out[split] = (images, np.array([label for *_, label in items]))
  return out


def _identify(rows: np.ndarray, images: np.ndarray) -> np.ndarray:
  """Index of the reference image each row equals (asserted)."""
  diff = np.abs(rows[:, None] - images[None]).max(axis=(2, 3, 4))
  idx = diff.argmin(axis=1)
  assert np.all(diff[np.arange(len(rows)), idx] < 1e-4), "unknown image"
  return idx


def _pixels(images: np.ndarray) -> np.ndarray:
  return images * STD + MEAN


def _input(data_dir, **kwargs):
  kwargs.setdefault("image_size", S)
  kwargs.setdefault("eval_resize", R)
  kwargs.setdefault("global_batch", 5)
  kwargs.setdefault("shuffle_buffer", 7)
  return imagenet.ImageNetInput(data_dir, **kwargs)


def _jpeg(pixels: np.ndarray) -> bytes:
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="JPEG", quality=95, subsampling=0)
  return out.getvalue()


def _pattern(height: int, width: int) -> np.ndarray:
  """Red: a left-to-right ramp; green: top-to-bottom; blue: waves."""
  y, x = np.mgrid[0:height, 0:width]
  rgb = np.stack(
      [
          x * 255 / (width - 1),
          y * 255 / (height - 1),
          127.5 + 100 * np.sin(x / 3 + y / 5),
      ],
      axis=-1,
  )
  return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


# ------------------------------------------------------------ preparing --
def test_prepare_builds_both_splits(data_dir, capsys):
  inp = _input(data_dir)
  assert inp.num_examples("train") == imagenet_fixture.NUM_TRAIN == 24
  assert inp.num_examples("valid") == imagenet_fixture.NUM_VALID == 10
  assert inp.describe() == {
      "train_examples": 24,
      "valid_examples": 10,
      "num_classes": 1000,
  }
  assert inp.num_classes == 1000 and inp.image_shape == (S, S, 3)
  # Prepared already: the CLI reuses it and prints the sizes.
  manual = imagenet_fixture.manual_dir_of(data_dir)
  argv = ["--data_dir", str(data_dir), "--manual_dir", str(manual)]
  assert imagenet.main(argv) == 0
  out = capsys.readouterr().out
  assert "train: 24 examples" in out and "validation: 10 examples" in out


def test_no_network_access(data_dir, tmp_path):
  assert imagenet_fixture.NETWORK_ATTEMPTS == []  # while preparing
  with imagenet_fixture.network_guard():
    with pytest.raises(ValueError, match="not prepared"):
      _input(tmp_path)
    batch = _input(data_dir).train_batch(0)
    assert batch["images"].shape == (5, S, S, 3)
    assert imagenet_fixture.NETWORK_ATTEMPTS == []
    # The guard does notice an attempt.
    import socket

    with pytest.raises(OSError, match="refused"):
      socket.create_connection(("localhost", 9))
  assert imagenet_fixture.NETWORK_ATTEMPTS == ["socket.create_connection"]
  imagenet_fixture.NETWORK_ATTEMPTS.clear()


def test_import_does_not_load_tensorflow():
  code = (
      "import sys, algebranets, algebranets.data.imagenet\n"
      "assert 'tensorflow' not in sys.modules, 'TF imported'\n"
  )
  subprocess.run(
      [subprocess_env.python(), "-c", code],
      check=True,
      env=subprocess_env.env(),
      timeout=120,
  )


def test_tensorflow_sees_no_gpu():
  assert imagenet._tf().config.get_visible_devices("GPU") == []


# -------------------------------------------------------------- training --
def test_train_batch_shapes_labels_and_normalization(data_dir):
  inp = _input(data_dir, global_batch=12)
  batches = [inp.train_batch(s) for s in range(2)]  # one epoch
  for batch in batches:
    assert batch["images"].shape == (12, S, S, 3)
    assert batch["images"].dtype == np.float32
    assert batch["labels"].shape == (12,) and batch["labels"].dtype == np.int32
  labels = np.concatenate([b["labels"] for b in batches])
  assert set(labels) <= set(imagenet_fixture.SYNSET_INDICES)
  pixels = _pixels(np.concatenate([b["images"] for b in batches]))
  # Uniform noise JPEGs: mean 127.5 per channel, values within [0, 255]
  # (the antialiased bilinear filter has no negative lobes).
  assert np.all(np.abs(pixels.mean(axis=(0, 1, 2)) - 127.5) < 12)
  assert pixels.min() > -1e-3 and pixels.max() < 255 + 1e-3
  assert pixels.std() > 20  # not a constant image


def test_epochs_are_permutations_and_differ(data_dir, references, monkeypatch):
  monkeypatch.setattr(imagenet, "NUM_CHUNKS", 4)
  inp = _input(data_dir, global_batch=6, augment=False)
  rows = np.concatenate([inp.train_batch(s)["images"] for s in range(8)])
  images, labels = references["train"]
  idx = _identify(rows, images)
  first, second = idx[:24], idx[24:]
  assert sorted(first) == list(range(24)) == sorted(second)
  assert not np.array_equal(first, second)
  # Labels travel with their images.
  batch = inp.train_batch(8)
  np.testing.assert_array_equal(
      batch["labels"], labels[_identify(batch["images"], images)]
  )


def test_resume_at_any_step_gives_the_same_batches(data_dir, monkeypatch):
  # 4 chunks of 6 records, windows of 7, batches of 5: the steps below
  # start inside a chunk, a window and (step 4: records 20-24) an epoch
  # boundary.
  monkeypatch.setattr(imagenet, "NUM_CHUNKS", 4)
  inp = _input(data_dir, seed=3)
  run = [inp.train_batch(s) for s in range(11)]
  for step in (4, 9):
    resumed = _input(data_dir, seed=3)
    for s in range(step, step + 2):
      batch = resumed.train_batch(s)
      np.testing.assert_array_equal(batch["images"], run[s]["images"])
      np.testing.assert_array_equal(batch["labels"], run[s]["labels"])
  # The dataset behind train_batch, started at a step.
  first = next(inp.train_dataset(7).as_numpy_iterator())
  np.testing.assert_array_equal(first["images"], run[7]["images"])
  # Going back re-positions the same object.
  np.testing.assert_array_equal(inp.train_batch(2)["images"], run[2]["images"])
  # Another seed, other batches.
  other = _input(data_dir, seed=4).train_batch(0)
  assert not np.array_equal(other["images"], run[0]["images"])


def test_processes_read_disjoint_halves(data_dir, references):
  images, labels = references["train"]
  seen = []
  for p in range(2):
    inp = _input(
        data_dir,
        global_batch=4,
        process_index=p,
        process_count=2,
        augment=False,
    )
    batches = [inp.train_batch(s) for s in range(6)]  # 12 rows: an epoch
    rows = np.concatenate([b["images"] for b in batches])
    assert rows.shape == (12, S, S, 3)
    idx = _identify(rows, images)
    assert len(set(idx)) == 12
    np.testing.assert_array_equal(
        np.concatenate([b["labels"] for b in batches]), labels[idx]
    )
    seen.append(set(idx))
  assert not seen[0] & seen[1]
  assert seen[0] | seen[1] == set(range(24))


def test_non_deterministic_mode_smoke(data_dir):
  batch = _input(data_dir, deterministic=False).train_batch(0)
  assert batch["images"].shape == (5, S, S, 3)
  assert set(batch["labels"]) <= set(imagenet_fixture.SYNSET_INDICES)


# ------------------------------------------------------------ evaluation --
@pytest.mark.parametrize(
    "process_count, batch_size, num_batches",
    [(1, 3, 4), (2, 4, 3), (3, 3, 4)],
)
def test_eval_covers_the_split_once(
    data_dir,
    references,
    process_count,
    batch_size,
    num_batches,
):
  images, labels = references["valid"]
  b = batch_size // process_count
  found = []
  for p in range(process_count):
    inp = _input(
        data_dir,
        global_batch=6,
        process_index=p,
        process_count=process_count,
    )
    batches = list(inp.eval_batches("valid", batch_size=batch_size))
    assert len(batches) == num_batches  # the same on every process
    for batch in batches:
      assert batch["images"].shape == (b, S, S, 3)
      assert batch["weights"].dtype == np.float32
    rows = np.concatenate([x["images"] for x in batches])
    weights = np.concatenate([x["weights"] for x in batches])
    got = np.concatenate([x["labels"] for x in batches])
    real = weights == 1
    assert set(np.unique(weights)) <= {0.0, 1.0}
    # Padding only at the end, as zeros.
    assert np.all(real[: real.sum()])
    assert np.all(rows[~real] == 0) and np.all(got[~real] == 0)
    idx = _identify(rows[real], images)
    np.testing.assert_array_equal(got[real], labels[idx])
    found.extend(idx)
  assert sorted(found) == list(range(10))  # each example exactly once


def test_eval_num_batches_and_train_split(data_dir, references):
  inp = _input(data_dir)
  assert len(list(inp.eval_batches("valid", batch_size=3, num_batches=2))) == 2
  batches = list(inp.eval_batches("train", batch_size=10))
  assert len(batches) == 3
  weights = np.concatenate([x["weights"] for x in batches])
  assert weights.sum() == 24
  rows = np.concatenate([x["images"] for x in batches])[weights == 1]
  assert sorted(_identify(rows, references["train"][0])) == list(range(24))


# --------------------------------------------------------- preprocessing --
@pytest.mark.parametrize(
    "height, width, size, resize",
    [(37, 53, 16, 20), (61, 29, 16, 24), (30, 30, 16, 20), (12, 18, 16, 20)],
)
def test_preprocess_eval_geometry_matches_pil(height, width, size, resize):
  data = _jpeg(_pattern(height, width))
  tf = imagenet._tf()
  got = _pixels(
      imagenet.preprocess_eval(tf.constant(data), size, resize).numpy()
  )
  # Independent reference: PIL decodes and resizes the shorter side to
  # `resize` (bilinear, widened when shrinking), numpy takes the centre.
  image = Image.open(io.BytesIO(data)).convert("RGB")
  if height <= width:
    new_h, new_w = resize, resize * width // height
  else:
    new_h, new_w = resize * height // width, resize
  ref = np.asarray(image.resize((new_w, new_h), Image.BILINEAR), np.float64)
  top, left = (new_h - size) // 2, (new_w - size) // 2
  crop = ref[top : top + size, left : left + size]
  assert got.shape == (size, size, 3)
  assert np.abs(got - crop).max() < 1.0  # PIL rounds to uint8
  # The comparison sees a one-pixel error in the geometry.
  if new_h > size:
    shifted = ref[top + 1 : top + 1 + size, left : left + size]
    assert np.abs(got - shifted).mean() > 5
  if new_w > size:
    shifted = ref[top : top + size, left + 1 : left + 1 + size]
    assert np.abs(got - shifted).mean() > 5


def test_preprocess_normalizes_with_imagenet_statistics():
  color = np.array([100, 150, 200], np.uint8)
  data = _jpeg(np.broadcast_to(color, (40, 48, 3)).copy())
  tf = imagenet._tf()
  expected = (color - MEAN) / STD
  out = imagenet.preprocess_eval(tf.constant(data), 16, 20).numpy()
  np.testing.assert_allclose(
      out, np.broadcast_to(expected, out.shape), atol=2 / 58
  )
  out = imagenet.preprocess_train(tf.constant(data), [1, 2], 16).numpy()
  np.testing.assert_allclose(
      out, np.broadcast_to(expected, out.shape), atol=2 / 58
  )


def test_preprocess_train_crops_and_flips():
  height, width, size = 60, 80, 32
  data = _jpeg(_pattern(height, width))
  tf = imagenet._tf()
  fn = tf.function(lambda key: imagenet.preprocess_train(data, key, size))
  outs = np.stack([_pixels(fn(tf.constant([7, k])).numpy()) for k in range(48)])
  assert outs.shape == (48, size, size, 3)
  np.testing.assert_array_equal(
      _pixels(fn(tf.constant([7, 0])).numpy()), outs[0]
  )
  assert len({o.tobytes() for o in outs}) == 48  # every key its own crop
  # Red rises left to right unless flipped; green rises downwards always.
  red_step = outs[:, :, -1, 0].mean(1) - outs[:, :, 0, 0].mean(1)
  green_step = outs[:, -1, :, 1].mean(1) - outs[:, 0, :, 1].mean(1)
  flipped = red_step < 0
  assert 0.2 < flipped.mean() < 0.8
  assert np.all(green_step > 0)
  # Crop extent from the ramps (edge rows/columns are 1/size apart
  # from the true edges): area 8%-100%, aspect 3/4-4/3 in pixels.
  fx = np.abs(red_step) / 255 * size / (size - 1)
  fy = green_step / 255 * size / (size - 1)
  area, aspect = fx * fy, (fx * width) / (fy * height)
  assert np.all(area > 0.08 * 0.8) and np.all(area < 1.05)
  assert np.all(aspect > 0.75 * 0.85) and np.all(aspect < 4 / 3 * 1.15)
  assert area.min() < 0.3 and area.max() > 0.6  # crops vary


def test_preprocess_train_falls_back_to_a_central_crop():
  # 8 x 200: no crop of >= 8% area has an aspect ratio within 3/4-4/3, so
  # every key takes the central crop of 32/64 of the shorter side (4 x 4
  # pixels around column 98-101).
  data = _jpeg(_pattern(8, 200))
  for k in range(3):
    out = _pixels(imagenet.preprocess_train(data, [0, k], 32).numpy())
    red = out[..., 0].mean()
    assert abs(red - 99.5 * 255 / 199) < 3, red
    assert np.ptp(out[..., 0]) < 8  # 4 columns of a 1.3-per-pixel ramp


# ----------------------------------------------------------------- errors --
def test_unprepared_or_missing_data_dir(tmp_path):
  for path in (tmp_path / "nowhere", tmp_path):
    with pytest.raises(ValueError) as e:
      _input(path)
    message = str(e.value)
    assert str(path) in message
    assert "python -m algebranets.data.imagenet --data_dir" in message
  assert "does not exist" in _message(lambda: _input(tmp_path / "nowhere"))
  assert "not prepared" in _message(lambda: _input(tmp_path))


def _message(fn) -> str:
  with pytest.raises(ValueError) as e:
    fn()
  return str(e.value)


def test_prepare_rejects_missing_or_broken_archives(tmp_path, capsys):
  data, manual = tmp_path / "tfds", tmp_path / "manual"
  message = _message(lambda: imagenet.prepare(data, manual))
  assert f"manual_dir '{manual}': is not a directory" in message
  manual.mkdir()
  message = _message(lambda: imagenet.prepare(data, manual))
  assert "ILSVRC2012_img_train.tar is missing" in message
  assert "ILSVRC2012_img_val.tar is missing" in message
  assert "image-net.org" in message
  assert f"--data_dir {data} --manual_dir {manual}" in message
  (manual / "ILSVRC2012_img_train.tar").write_bytes(b"not a tar" * 100)
  message = _message(lambda: imagenet.prepare(data, manual))
  assert "ILSVRC2012_img_train.tar is not a tar archive" in message
  argv = ["--data_dir", str(data), "--manual_dir", str(manual)]
  assert imagenet.main(argv) == 2
  assert "ILSVRC2012_img_val.tar is missing" in capsys.readouterr().err
  assert not data.exists()  # nothing half-built


def test_bad_arguments(data_dir):
  inp = _input(data_dir, global_batch=4, process_count=2)
  assert "no labels" in _message(lambda: inp.eval_batches("test", batch_size=4))
  assert "Unknown ImageNet split 'dev'" in _message(
      lambda: inp.eval_batches("dev", batch_size=4)
  )
  assert "Evaluation batch size 3 is not divisible" in _message(
      lambda: inp.eval_batches("valid", batch_size=3)
  )
  assert (
      "Global batch size 5 is not divisible by the number of processes 2"
      in (_message(lambda: _input(data_dir, global_batch=5, process_count=2)))
  )
  assert "process_index 2 must be in [0, 2)" in _message(
      lambda: _input(data_dir, process_index=2, process_count=2)
  )
  assert "eval_resize (20) must be >= image_size (24)" in _message(
      lambda: _input(data_dir, image_size=24)
  )
  assert "shuffle_buffer must be a positive integer" in _message(
      lambda: _input(data_dir, shuffle_buffer=0)
  )
  assert "resize (8) must be >= image_size (16)" in _message(
      lambda: imagenet.preprocess_eval(b"", 16, 8)
  )
