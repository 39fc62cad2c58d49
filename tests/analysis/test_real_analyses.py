"""The analyses on the real-image benchmark: the `real:` image source, the encoders of a recorded
distillation run (`experiments.real_experiment`) and of released weights, the multi-domain
Grad-CAM rows with per-image object masks, and the seed-group tables."""
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import traverse_util

for _m in ("sklearn", "skimage", "PIL"):
  pytest.importorskip(_m)
from configs import analyze as analyze_config  # pylint: disable=g-import-not-at-top
from configs.distill import real_experiment  # pylint: disable=g-import-not-at-top
from featcon import distill  # pylint: disable=g-import-not-at-top
from featcon import io  # pylint: disable=g-import-not-at-top
from featcon import models  # pylint: disable=g-import-not-at-top
from featcon import training  # pylint: disable=g-import-not-at-top
from featcon.analysis import datasets  # pylint: disable=g-import-not-at-top
from featcon.analysis import encoders  # pylint: disable=g-import-not-at-top
from featcon.analysis import experiment  # pylint: disable=g-import-not-at-top
from featcon.analysis import gradcam  # pylint: disable=g-import-not-at-top
from featcon.analysis import metrics  # pylint: disable=g-import-not-at-top
from featcon.analysis import representation  # pylint: disable=g-import-not-at-top
from featcon.analysis import suite  # pylint: disable=g-import-not-at-top
from featcon.data import Loader, real, refs, registry  # pylint: disable=g-import-not-at-top
from featcon.data.sources import DatasetNotPreparedError  # pylint: disable=g-import-not-at-top
from featcon.distill import batchnorm, stamps  # pylint: disable=g-import-not-at-top
from featcon.models import efficientnet  # pylint: disable=g-import-not-at-top


def _data_cfg(**kw):
  c = dict(source="real:skdigits_grass:test", size=32, n_per_domain=25, n_shift=5, ood_sets="",
           seed=0)
  return ml_collections.ConfigDict(dict(c, **kw))


def _pretrained_or_skip():
  try:
    return models.load_pretrained("efficientnet-lite0")
  except ModuleNotFoundError as e:
    pytest.skip(f"pre-trained weights absent: {e}")


def test_real_source_is_what_the_loader_feeds_with_object_masks():
  data = datasets.load(_data_cfg())
  assert data.domain_names == ("ID (skdigits_grass)", "OOD (skdigits_textures)",
                               "OOD (skdigits_photos)")
  np.testing.assert_array_equal(np.bincount(data.domains), [25, 25, 25])
  assert data.normalization == "clip" and data.mask.shape == (75, 32, 32)
  for d, name in enumerate(("skdigits_grass", "skdigits_textures", "skdigits_photos")):
    # The distillation / probe pipeline's path: the registry set, refs.subset, the Loader.
    ds = refs.subset(registry.load(name, "test", image_size=32), 25)
    batch = next(Loader(ds.source, 25, 32, workers=1).eval_iter())
    np.testing.assert_array_equal(data.images[data.domains == d], batch["image"])
    np.testing.assert_array_equal(data.labels[data.domains == d], batch["label"])
    # Each mask is the object's 20 x 20 square at that image's own position.
    boxes = real.object_boxes("skdigits", name.split("_")[1], "test", image_size=32)
    for m, box in zip(data.mask[data.domains == d], boxes[ds.source.indices]):
      rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
      assert m.sum() == 400 and (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1) == tuple(box)
  # The shifted copies: the first ID items, same object place, another background.
  assert data.shifted_images.shape == (5, 32, 32, 3)
  np.testing.assert_array_equal(data.shifted_index, np.arange(5))
  same = (data.shifted_images == data.images[:5]).all(-1)  # the opaque object pixels
  inside = data.mask[:5] > 0
  assert (same & inside).sum((1, 2)).min() >= 10 and (same & ~inside).mean() < 0.01
  # Deterministic.
  np.testing.assert_array_equal(datasets.load(_data_cfg()).images, data.images)
  # One OOD set on request.
  one = datasets.load(_data_cfg(ood_sets="skdigits_photos", n_per_domain=10))
  assert one.domain_names[1:] == ("OOD (skdigits_photos)",) and len(one.images) == 20


@pytest.mark.parametrize("kw,match", [
    (dict(source="real:skdigits_grass"), r"use 'real:<ID set>:<split>'"),
    (dict(source="real:digits_grey:test"), r"'digits_grey' is not a real-image background set"),
    (dict(source="real:skdigits_grass:val"), r"no other background of 'skdigits' has this split"),
    (dict(ood_sets="mnist_photos"), r"must show the ID set's objects \('skdigits'\)"),
    (dict(ood_sets="skdigits_grass"), r"on another background than 'grass'"),
    (dict(source="real:skdigits_textures:val"), r"split='val' is not allowed for "
     r"'skdigits_textures'; allowed: test"),
])
def test_real_source_refuses_bad_names(kw, match):
  with pytest.raises(ValueError, match=match):
    datasets.load(_data_cfg(**kw))


def test_missing_fashion_mnist_names_the_install_command(monkeypatch, tmp_path):
  monkeypatch.setattr(real, "FASHION_DIRS", (str(tmp_path),))
  monkeypatch.delenv(real.FASHION_ENV, raising=False)
  for f in (real.load_fashion_mnist, real.object_split, real._make_real_arrays):  # pylint: disable=protected-access
    f.cache_clear()
  with pytest.raises(DatasetNotPreparedError, match="apt-get install dataset-fashion-mnist"):
    datasets.load(_data_cfg(source="real:fmnist_grass:test"))
  for f in (real.load_fashion_mnist, real.object_split, real._make_real_arrays):  # pylint: disable=protected-access
    f.cache_clear()


def test_pretrained_spec_reuses_the_library_loader():
  ref = _pretrained_or_skip()
  ov = {"num_classes": 0, "input_normalization": "clip"}
  e = encoders.load("teacher", "efficientnet-lite0@pretrained", (32, 32, 3), 0, ov)
  assert e.module == efficientnet.create("efficientnet-lite0", **ov)
  want = dict(ref, params={k: v for k, v in ref["params"].items() if k != "fc"})
  flat_w, flat_e = (traverse_util.flatten_dict(v, sep="/") for v in (want, e.variables))
  assert set(flat_w) == set(flat_e) and "params/fc/kernel" not in flat_e
  for k, v in flat_w.items():
    np.testing.assert_array_equal(flat_e[k], v)
  full = encoders.load("t", "efficientnet-lite0@pretrained", (32, 32, 3))  # with the classifier
  assert full.variables["params"]["fc"]["kernel"].shape == (1280, 1000)
  with pytest.raises(ValueError, match="finds weights by itself only for efficientnet-lite0"):
    encoders.load("t", "tiny-rn@pretrained", (32, 32, 3))


def _fake_real_run(wd):
  """A recorded run directory as experiments.real_experiment leaves it (its reduced config):
  the record, a student checkpoint, and the recalibrated BatchNorm statistics cache."""
  cfg = real_experiment.get_config("ci")  # student tiny-rn (output 1280, 32 px), Lite0 teacher
  cfg.teacher.source = "checkpoint"  # the released weights (the run's fine-tuned teacher: slow)
  module = models.make_encoder(cfg.model.student, **cfg.model.student_overrides)
  variables = training.init_variables(module, cfg.data.image_size, 3)
  mngr = training.checkpoint_manager(os.path.join(wd, "student", "checkpoints"))
  mngr.save(cfg.distill.steps, args=ocp.args.StandardSave(
      {"step": jnp.asarray(cfg.distill.steps), "params": variables["params"],
       "batch_stats": variables["batch_stats"]}),
      custom_metadata={training.STAMP_METADATA: stamps.student(cfg)})
  mngr.wait_until_finished()
  mngr.close()
  recal = jax.tree.map(lambda v: np.asarray(v) + 0.25, variables["batch_stats"])
  flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(recal).items()}
  stamp = batchnorm.recalibration_stamp(
      variables, cfg, f"{cfg.data.distill_train}|{cfg.data.distill_limit}")
  np.savez(batchnorm.cache_path(os.path.join(wd, "student"), cfg), **flat,
           **{io.STAMP_KEY: io.stamp_array(stamp)})
  distill.write_run_info(wd, cfg, "real_experiment")
  return cfg, module, variables, recal


def test_recorded_run_gives_the_evaluated_models(tmp_path):
  root = tmp_path / "real_run"
  wd = str(root / "s0" / "main")
  cfg, module, variables, recal = _fake_real_run(wd)
  for spec, label in ((f"tiny-rn@{wd}/student", "s"), (f"tiny-rn@{wd}/student/checkpoints", "s"),
                      (f"tiny-rn@{wd}", "student")):
    e = encoders.load(label, spec, (32, 32, 3))
    assert e.module == module  # the recorded overrides (output_dim 1280), not the arch defaults
    for a, b in zip(jax.tree.leaves(variables["params"]), jax.tree.leaves(e.variables["params"]),
                    strict=True):
      np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(recal), jax.tree.leaves(e.variables["batch_stats"]),
                    strict=True):  # the recalibrated statistics the run evaluated with
      np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match=r"recorded model.student='tiny-rn'; use 'tiny-rn@...'"):
    encoders.load("s", f"tiny-vit@{wd}/student", (32, 32, 3))
  specs = experiment.real_run_encoders(str(root))
  assert specs == [("teacher", f"efficientnet-lite0@{wd}/teacher"),
                   ("student_s0", f"tiny-rn@{wd}/student")]
  with pytest.raises(ValueError, match="no s<seed>/main/student/checkpoints"):
    experiment.real_run_encoders(str(tmp_path))
  ref = _pretrained_or_skip()
  t = encoders.load("teacher", specs[0][1], (32, 32, 3))  # released weights, the run's overrides
  assert t.module == models.make_encoder("efficientnet-lite0", **cfg.model.overrides)
  np.testing.assert_array_equal(t.variables["params"]["stem"]["conv_stem"]["kernel"],
                                ref["params"]["stem"]["conv_stem"]["kernel"])
  assert "fc" not in t.variables["params"]


def test_input_normalization_must_match_the_data():
  data = datasets.ImageSet(np.zeros((2, 8, 8, 3), np.float32), np.array([0, 1]),
                           np.array([0, 1]), 2, normalization="clip")
  lite = encoders.Encoder("t", "efficientnet-lite0@pretrained",
                          efficientnet.create("efficientnet-lite0"), {})
  with pytest.raises(ValueError, match=r"input_normalization='lite' but the images of "
                                       r"data.source are normalised as 'clip'"):
    experiment.check_normalization([lite], data)
  clip = lite._replace(module=efficientnet.create("efficientnet-lite0",
                                                  input_normalization="clip"))
  experiment.check_normalization([clip], data)
  other = lite._replace(module=models.make_encoder("mlp-relu"))  # no input scaling to check
  experiment.check_normalization([other], data)


def test_lite_default_layers_and_cam_layer():
  m = efficientnet.create("efficientnet-lite0", num_classes=0)
  for side, cam in ((48, "block4"), (224, "block15")):
    inter = jax.eval_shape(lambda: m.init_with_output(
        jax.random.PRNGKey(0), jnp.zeros((1, side, side, 3)))[0][1])
    shapes = {k: v.shape for k, v in inter.items()}
    assert suite.default_cam_layer(list(shapes), shapes) == cam
  assert shapes["stage5_act"] == (1, 14, 14, 672) and shapes["head_act"] == (1, 7, 7, 1280)
  assert suite.default_layers(list(shapes)) == (
      ["stem"] + [f"stage{s}_act" for s in range(1, 8)] + ["head_act"])


def test_cam_rows_follow_domains_and_per_image_masks():
  n, hw = 9, (6, 6)
  rng = np.random.default_rng(0)
  masks = (rng.random((n, *hw)) > 0.5).astype(np.float32)
  data = datasets.ImageSet(
      rng.random((n, *hw, 3)).astype(np.float32), np.arange(n) % 2,
      np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]), 2, domain_names=("ID", "OOD a", "OOD b"),
      shifted_images=rng.random((2, *hw, 3)).astype(np.float32), shifted_index=np.array([2, 1]),
      mask=masks)
  cfg = ml_collections.ConfigDict({"cam_examples": 1, "cam_mass_examples": 2})
  rows = suite._cam_rows(cfg, data)  # pylint: disable=protected-access
  assert list(rows) == ["ID", "ID, background shifted", "OOD a", "OOD b"]
  np.testing.assert_array_equal(rows["ID"][0], data.images[[2, 1]])
  np.testing.assert_array_equal(rows["ID, background shifted"][2], masks[[2, 1]])
  np.testing.assert_array_equal(rows["OOD b"][2], masks[[6, 7]])
  cams = rng.random((2, *hw)).astype(np.float32)
  want = [(c * m).sum() / c.sum() for c, m in zip(cams, masks[[6, 7]])]
  np.testing.assert_allclose(gradcam.cam_mass_in_mask(cams, rows["OOD b"][2]), want, rtol=1e-6)
  with pytest.raises(ValueError, match=r"mask.shape=\(8, 6, 6\): need \(6, 6\) \(one mask\) or "
                                       r"\(9, 6, 6\)"):
    datasets.ImageSet(data.images, data.labels, data.domains, 2, mask=masks[:8])


def test_activation_share_on_the_object_against_loops():
  rng = np.random.default_rng(1)
  acts = rng.random((3, 4, 4, 5)).astype(np.float32) * (rng.random((3, 4, 4, 5)) > 0.4)
  mask = (rng.random((3, 8, 8)) > 0.6).astype(np.float32)
  down = np.zeros((3, 4, 4))
  for n in range(3):
    for i in range(4):
      for j in range(4):
        down[n, i, j] = mask[n, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean()
  np.testing.assert_allclose(metrics.mask_at(mask, 4, 4), down, rtol=1e-6)
  want = [(acts[n].sum(-1) * down[n]).sum() / acts[n].sum() for n in range(3)]
  np.testing.assert_allclose(metrics.activation_share_in_mask(acts, mask), want, rtol=1e-5)
  np.testing.assert_allclose(metrics.activation_share_in_mask(acts, mask[0]),
                             [(acts[n].sum(-1) * down[0]).sum() / acts[n].sum()
                              for n in range(3)], rtol=1e-5)
  # A non-dividing grid: an area-weighted resize keeps a constant mask constant.
  np.testing.assert_allclose(metrics.mask_at(np.full((8, 8), 0.3), 3, 3), 0.3, rtol=1e-5)


def test_shift_sensitivity_against_numpy():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(50, 6))
  b = a + 0.1 * rng.normal(size=(50, 6))
  got = representation.shift_sensitivity(a, b, jax.random.PRNGKey(0))
  rel = np.linalg.norm(b - a, axis=1) / np.linalg.norm(a, axis=1)
  cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
  np.testing.assert_allclose([got["rel_change"], got["cosine"]], [rel.mean(), cos.mean()],
                             rtol=1e-10)
  allpairs = np.linalg.norm(a[None] - a[:, None], axis=-1) / np.linalg.norm(a, axis=1)[:, None]
  exact = allpairs.sum() / (50 * 49)  # mean over every ordered pair i != j
  assert abs(got["item_distance"] - exact) < 0.03 * exact
  assert got["ratio"] == pytest.approx(got["rel_change"] / got["item_distance"])
  same = representation.shift_sensitivity(a, a, jax.random.PRNGKey(0))
  assert same["rel_change"] == 0 and same["cosine"] == pytest.approx(1.0)
  swapped = representation.shift_sensitivity(a, np.roll(a, 1, axis=0), jax.random.PRNGKey(0))
  assert 0.85 < swapped["ratio"] < 1.15  # another item: as far as an item swap


def test_seed_groups_are_reduced_to_mean_and_std():
  res = {"encoders": {"teacher": "x", "student_s0": "x", "student_s1": "x", "student_s2": "x"},
         "domain": {l: {"error": e, "chance_error": 0.5, "pca_explained": [p, 0.1]}
                    for l, e, p in (("teacher", 0.4, 0.3), ("student_s0", 0.1, 0.5),
                                    ("student_s1", 0.2, 0.6), ("student_s2", 0.6, 0.7))}}
  g = experiment.grouped_numbers(res)
  assert list(g) == ["teacher", "student"]
  err = g["student"]["domain-probe hold-out error | representation"]
  np.testing.assert_allclose(err, [0.3, np.std([0.1, 0.2, 0.6]), 3])
  assert g["teacher"]["PCA: variance on PC1 | representation"] == [0.3, 0.0, 1]
  table = experiment.markdown_table(res)
  assert "| measure | layer | teacher | student (n=3) |" in table
  assert "| domain-probe hold-out error | representation | 0.400 | 0.300 ± 0.216 |" in table


@pytest.mark.slow
def test_real_config_end_to_end_on_a_small_network(tmp_path):
  cfg = analyze_config.get_config("real")
  with cfg.unlocked():
    cfg.encoders = "net_s0=random:small-resnet,net_s1=random:small-resnet"
    cfg.encoder_overrides = {}
    cfg.padding.widths = (4, 8)
    cfg.data.source = "real:skdigits_grass:test"
    cfg.data.size, cfg.data.n_per_domain, cfg.data.n_shift = 32, 12, 4
    cfg.density_layer = cfg.cam_layer = ""
    cfg.cam_examples, cfg.cam_mass_examples, cfg.batch_size = 2, 6, 12
  res = experiment.run(cfg, str(tmp_path))["encoders"]
  g = res["gradcam"]["net_s0"]
  assert {f"mass_on_object.{r}" for r in ("ID", "ID, background shifted",
                                           "OOD (skdigits_textures)", "OOD (skdigits_photos)")
          } <= set(g)
  assert res["gradcam"]["object_area"] == pytest.approx(400 / 1024)
  assert set(res["selectivity"]["layer2"]["net_s1"]) == {
      "ID (skdigits_grass)", "OOD (skdigits_textures)", "OOD (skdigits_photos)"}
  b = res["background"]
  grid = b["object_share_of_grid"]["OOD (skdigits_photos)"]
  assert set(grid) == {"stem", "layer1", "layer2"} and 0.3 < grid["layer1"] < 0.5
  for v in b["activation_on_object"]["layer2"]["net_s0"].values():
    assert 0.0 < v < 1.0
  assert b["shift_sensitivity"]["net_s1"]["n"] == 4
  table = (tmp_path / "encoders" / "table.md").read_text()
  assert "| net (n=2) |" in table and "Grad-CAM mass on object, OOD (skdigits_photos)" in table
  assert "mean ± std over seeds" in experiment.summary_text({"encoders": res})
