"""ONNX Runtime as a reference: a session over an ONNX model, named outputs fetched per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OrtRunner:
    """ONNX Runtime session over an ONNX model (bytes or path), fetching named outputs."""

    def __init__(self, model_bytes: bytes, extra_outputs: list[str] | None = None, *, where: str = "ONNX model",
                 folder: Path | None = None) -> None:
        """`folder`: where the model was read from (its external data may only lie inside it); None for a
        model made in memory (tf2onnx's), which may name no external data."""
        import onnx
        import onnxruntime as ort

        from convert.runtime.errors import fail
        from convert.safety.onnx import check_onnx, external_files

        try:
            model = onnx.load_from_string(model_bytes)
        except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and others on a damaged file)
            raise fail(f"{where}: not a readable ONNX model ({type(e).__name__})") from None
        check_onnx(model, where, folder)  # before ONNX Runtime sees it
        external = external_files(model, where, folder)
        if external:
            onnx.load_external_data_for_model(model, str(folder))
        known = {o.name for o in model.graph.output}
        added = [name for name in extra_outputs or [] if name not in known]
        for name in added:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.enable_mem_pattern = False  # its plan preallocates for the whole batch: +0.1 GB at 16 x 224 px
        # its intra-op workers yield between runs rather than spin (convert/runtime/threads.py)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # the bytes as read where the model is as read (checked above): serialising ResNet50's 100 MB again
        # cost 0.34 s, as long as ONNX Runtime's whole session set-up
        self.sess = ort.InferenceSession(model.SerializeToString() if added or external else model_bytes, opts,
                                         providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.input = inp.name
        self.batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def run(self, x: np.ndarray, fetches: list[str]) -> list[np.ndarray]:
        step = self.batch or 4  # small batches: peak memory flat in the probe count, no slower on CPU
        outs: list[list[np.ndarray]] = [[] for _ in fetches]
        for i in range(0, len(x), step):
            res = self.sess.run(fetches, {self.input: x[i : i + step]})
            for acc, r in zip(outs, res, strict=False):
                acc.append(r.reshape(len(r), -1) if r.ndim == 4 and r.shape[1:3] == (1, 1) else r)
        return [np.concatenate(o) for o in outs]
