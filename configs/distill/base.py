"""Fields shared by every distillation config (see configs/distill/digits.py for the meaning)."""
import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_devices = 0                    # 0 = data parallel over all devices
  c.data = ml_collections.ConfigDict(dict(
      data_dir="",                     # root of tensorflow_datasets/ and image folders
      image_size=224,
      augment="crop_flip",             # training augmentation: none | crop | crop_flip
      workers=8,                       # decoding threads
      distill_train="",                # "name:split" the student is distilled on (ID)
      probe_train="", probe_val="",    # the linear probe's ID train / validation sets
      eval_sets="",                    # comma-separated "name:split:role", role in {id, ood}
      distill_limit=0,                 # > 0: distil on this many distill_train images (seeded)
      eval_limit=0,                    # > 0: evaluate on this many images of each eval set
      digits=ml_collections.ConfigDict(dict(copies=1)),
  ))
  c.model = ml_collections.ConfigDict(dict(teacher="", student="", overrides={},
                                           student_overrides={}))
  c.teacher = ml_collections.ConfigDict(dict(
      source="checkpoint",             # checkpoint | pretrain | random
      checkpoint="",                   # released weights (CLIP) for source=checkpoint
      data="",                         # "name:split" for source=pretrain
      pretrain=ml_collections.ConfigDict(dict(steps=0, batch_size=64, lr=1e-3,
                                              weight_decay=0.05, warmup_steps=0)),
  ))
  c.distill = ml_collections.ConfigDict(dict(
      steps=0, batch_size=256, lr=1e-3, weight_decay=0.05, warmup_steps=10_000,
      block_weight=0.0,                # weight of the per-block MSE (ViT: 0.1)
      init_attention_from_teacher=False,
      checkpoint_every=1000, log_every=100,
      stop_after=-1,                   # >= 0: stop after this step (simulated preemption)
      # > 0: BatchNorm running statistics of the networks trained or initialised here (student,
      # pre-trained or random teacher) recomputed on this many of their training images
      # (featcon/distill/batchnorm.py); 0 = the running statistics of training.
      bn_recalibration=0,
  ))
  c.probe = ml_collections.ConfigDict(dict(
      models="teacher,student",        # which frozen encoders get probes
      representation="embedding",      # or an intermediate's name (mean-pooled)
      optimizer="adamw", lr=1e-3, weight_decay=1e-3, batch_size=256, epochs=10,
      weight_decay_teacher=-1.0,       # >= 0: a different decay for the teacher's probe
      ridge_lambdas="1e-4,1e-3,1e-2,1e-1,1,10",
      feature_batch_size=256,
      primary="adamw",                 # probe reported in the summary: adamw | ridge
  ))
  c.eval = ml_collections.ConfigDict(dict(
      metric="accuracy",               # accuracy | macro_f1 (iWildCam)
      baseline="pixels",               # effective-robustness baseline: pixels | csv:PATH | none
      baseline_fractions="0.05,0.1,0.2,0.4,0.7,1.0",
  ))
  return c


def parse_arg(arg, allowed_models, default_model):
  """``"MODEL[,smoke]"`` -> (model, smoke)."""
  tokens = [t for t in (arg or "").split(",") if t]
  model = default_model
  smoke = False
  for t in tokens:
    if t == "smoke":
      smoke = True
    elif t in allowed_models:
      model = t
    else:
      raise ValueError(f"config argument {t!r} is not allowed; allowed: "
                       f"{', '.join(allowed_models)}, smoke")
  return model, smoke
