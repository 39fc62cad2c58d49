"""Deep-network analyses of Section 5 and Appendices F.2–F.4, G (see docs/analyses.md).

- `metrics`: class activation rates (F.2), neuron selectivity (F.3), activation density (G.2),
  streamed as per-class sums over any post-nonlinearity activations;
- `representation`: closed-form ridge probe, domain-classification error (G.1), 2-D PCA;
- `gradcam`: Grad-CAM through a named intermediate of any encoder (Figure 6);
- `padding/`: the padded-image experiment (F.4) on scikit-learn digits or registry RGB images
  (`colours`, `render`, `measures`, `data`, `experiment`), trained on `featcon.models`'
  SmallResNet;
- `encoders`: encoders by name (through `featcon.models.make_encoder`) from random init, a
  checkpoint or a distillation run;
- `datasets`: in-memory image sets with labels and domain ids;
- `suite`: the encoder analyses as a table `ANALYSES` (name → function), `run_all` → PNG + JSON;
- `experiment`: `run(cfg, workdir)`, the padding experiment then the suite, and `summary_text`;
- `plots`: the figures. Entry point: `python -m experiments.analyze` (configs/analyze.py).
"""
