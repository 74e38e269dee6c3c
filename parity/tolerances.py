"""The default parity tolerances, as plain numbers: the one place they are written.

`parity.metrics` builds EVAL_TOL and TRAIN_TOL from them, so they are what `parity check` compares at
by default, what a certificate records and what the trainer's gate requires (none looser). The CLI
reads them for its --atol/--rtol defaults; this module imports nothing, so `--help` stays as cheap as
`python -c pass` allows (tests/convert/test_startup.py).

A point passes when max|cand - ref| <= atol + rtol * max|ref|.
"""

# Eval mode, float32 through ~50 layers: correct ports measured max|Δ| <= 1.26e-5 · max|ref| (sample
# models, 96 and 224 inputs, 8 probes); rtol 1e-4 keeps an 8x margin against false alarms while any
# real fault is orders larger.
EVAL_ATOL = 1e-5
EVAL_RTOL = 1e-4

# Train mode normalises with batch statistics, which TF's FusedBatchNorm (training) and PyTorch compute
# differently in float32: correct ports measured max|Δ|/max|ref| up to 1.24e-3 (keras2_h5 sample, 224,
# batch 8, at features.17.conv.3:bn; the TF-slim graph 1.86e-4). Both measured by scripts/parity_figures.py
# (docs/parity_figures.json), which the README quotes and tests/parity/test_cli.py reads.
TRAIN_ATOL = 1e-4
TRAIN_RTOL = 2e-3
