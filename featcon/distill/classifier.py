"""The supervised classifier both trained teachers use (the "pretrain" source of
:mod:`featcon.distill.teacher` and the fine-tuned teacher of :mod:`featcon.distill.finetune`): a
linear head on the encoder's pooled embedding, trained with softmax cross-entropy."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from featcon import training as train_lib


def head_params(module, variables: dict, image_size: int, num_classes: int) -> dict:
  """``{"encoder": variables["params"], "head": {"kernel", "bias"}}`` with a zero head (logits
  0, i.e. chance, before training) sized to the encoder's embedding."""
  emb_dim = jax.eval_shape(lambda v: module.apply(
      v, jnp.zeros((1, image_size, image_size, 3)))[0], variables).shape[-1]
  return {"encoder": variables["params"],
          "head": {"kernel": jnp.zeros((emb_dim, num_classes)),
                   "bias": jnp.zeros((num_classes,))}}


def cross_entropy_step(module, tx):
  """One optimizer step on ``mean_i CE(softmax(e(x_i) W + b), y_i)`` with the encoder in
  training mode (BatchNorm batch statistics, running statistics updated); reports the loss and
  the batch's accuracy."""
  def step(state, batch):
    def loss_fn(p):
      emb, _, upd = train_lib.apply_train(module, p["encoder"], state.get("batch_stats"),
                                          batch["image"])
      logits = emb @ p["head"]["kernel"] + p["head"]["bias"]
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
      return loss, (upd, (logits.argmax(-1) == batch["label"]).mean())
    state, loss, acc = train_lib.state_step(loss_fn, state, tx)
    return state, {"loss": loss, "accuracy": acc}
  return step
