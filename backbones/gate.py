"""The parity gate: a ported backbone trains only with a passing certificate for exactly its bytes.

The certificate lives in ``parity.certificate`` (bound to the checkpoint's sha256 and to the BN modes
that passed); here we only ask it. Its refusal, ``GateError``, ends the run with exit 1.
``--no-parity-gate`` skips the question and says so loudly, because a port that matches in eval mode
can still wreck training.
"""

from __future__ import annotations

from parity.certificate import GateError, check_for_training

SKIPPED = ("{ckpt} trains without a passing parity certificate. Nothing shows that this port computes what "
           "its TF source computes, in eval or in train mode.")


def check(ckpt: str, bn_mode: str) -> None:
    """Raise GateError unless parity certifies `ckpt` for training with BN in `bn_mode`."""
    try:
        check_for_training(ckpt, bn_mode)
    except GateError as e:
        raise GateError(f"parity gate: {e}") from None
