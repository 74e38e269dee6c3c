"""Keep the frameworks' start-up chatter off the terminal: stderr is for tfport's one-line errors."""

from __future__ import annotations

import os


def quiet_frameworks() -> None:
    """TF and Keras log to stderr at import; keep stderr for our one-line errors."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
