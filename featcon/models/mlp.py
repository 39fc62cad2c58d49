"""The theory's two-layer network as an image encoder (Section 3.2)."""
import flax.linen as nn


class TwoLayerNet(nn.Module):
  """The theory's network ``f(x) = A sigma(W x)`` on flattened pixels (Section 3.2)."""
  width: int = 256
  output_dim: int = 32
  activation: str = "relu"

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train
    act = {"relu": nn.relu, "identity": lambda z: z}[self.activation]
    h = act(nn.Dense(self.width, name="hidden")(x.reshape(x.shape[0], -1)))
    emb = nn.Dense(self.output_dim, name="out")(h)
    return emb, {"hidden": h, "embedding": emb}
