"""The bad-input corpus: every file a user might wrongly hand to a CLI, built reproducibly.

Each entry says which CLI gets it, the arguments, the exit code it must give, and a word the one
error line must contain. `build(folder, samples)` writes the files; the test runs them all.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.zoo.payloads import Payload


@dataclass(frozen=True)
class Entry:
    name: str
    argv: tuple[str, ...]  # {d} = corpus folder, {src} = a good source, {out} = output folder
    code: int
    mentions: str = ""
    payload: bool = False  # the file carries a pickle payload that would create {d}/PWNED-<name>
    names: str = ""  # what the error line must name (default: the stem of the file handed over)


def _truncate(data: bytes, frac: float = 0.4) -> bytes:
    return data[: int(len(data) * frac)]


def build(d: Path, good_pb: Path, good_h5: Path, good_keras: Path, ported: Path, not_v2: dict[str, Path]) -> list[Entry]:
    rng = np.random.default_rng(0)
    entries: list[Entry] = []
    rand = lambda n: rng.integers(0, 256, n, dtype=np.uint8).tobytes()  # noqa: E731

    def conv(name, data, code=2, mentions=""):
        (d / name).write_bytes(data)
        entries.append(Entry(f"convert:{name}", ("convert", "tf2torch", "{d}/" + name, "-o", "{out}/p.pth"), code, mentions))

    def par(name, data, code=2, mentions="", payload=False):
        (d / name).write_bytes(data)
        entries.append(Entry(f"parity:{name}", ("parity", "check", "{d}/" + name, "--source", "{src}"), code, mentions, payload))

    # --- sources for convert ------------------------------------------------------------
    conv("empty.pb", b"", mentions="empty")
    conv("random.pb", rand(5000))
    conv("truncated.pb", _truncate(good_pb.read_bytes()))
    conv("empty.h5", b"", mentions="empty")
    conv("random.h5", b"\x89HDF\r\n\x1a\n" + rand(3000))
    conv("truncated.h5", _truncate(good_h5.read_bytes()))
    conv("random.keras", b"PK\x03\x04" + rand(2000))
    conv("truncated.keras", _truncate(good_keras.read_bytes()))
    conv("random.onnx", rand(3000), mentions="unknown model format")
    conv("random.npy", rand(300))
    for kind, path in not_v2.items():
        entries.append(Entry(f"convert:{kind}", ("convert", "tf2torch", str(path), "-o", "{out}/p.pth"), 2, "not a MobileNetV2"))
    # model files carrying code (issue: code inside a model file never runs unless the user says so)
    from tests.zoo.payloads import write as write_payload

    for version, kind, fmt in (("k2", "lambda", "h5"), ("k3", "lambda", "keras"), ("k2", "custom_class", "keras"),
                               ("k3", "custom_class", "h5")):
        name = f"{kind}_{version}.{fmt}"
        write_payload(kind, version, fmt, d / f"{kind}_{version}", d / f"PWNED-convert:{name}")
        entries.append(Entry(f"convert:{name}", ("convert", "tf2torch", "{d}/" + name, "-o", "{out}/p.pth"), 2,
                             "--trust-code", True))
    entries.append(Entry("repair:lambda_k2.h5", ("convert", "repair", "{ported}", "--source", "{d}/lambda_k2.h5", "-o",
                                                 "{out}/fixed.pth"), 2, "--trust-code", True, names="lambda_k2"))
    # graphs whose ops reach the file system, and containers out of bounds (issue 21): each WriteFile would
    # create its PWNED marker
    from tests.zoo import hostile

    hostile_sources = {
        "telemetry.pb": lambda p: hostile.write_file_pb(p, d / "PWNED-convert:telemetry.pb", good_pb),
        "if_branch.pb": lambda p: hostile.if_branch_pb(p, d / "PWNED-convert:if_branch.pb"),
        "telemetry_savedmodel": lambda p: hostile.write_file_savedmodel(p, d / "PWNED-convert:telemetry_savedmodel"),
        "flex.tflite": hostile.flex_tflite,
        "bomb.keras": lambda p: hostile.zip_bomb_keras(good_keras, p),
        "slip.keras": lambda p: hostile.zip_slip_keras(good_keras, p),
        "linked.h5": lambda p: hostile.h5_external_link(good_h5, p, d / "linked_other.h5"),
    }
    for name, writer in hostile_sources.items():
        if writer(d / name) is not None:
            entries.append(Entry(f"convert:{name}", ("convert", "tf2torch", "{d}/" + name, "-o", "{out}/p.pth"), 2,
                                 "refused", name.endswith(("pb", "savedmodel"))))
    (d / "folder.pb").mkdir()
    entries.append(Entry("convert:folder", ("convert", "tf2torch", "{d}/folder.pb", "-o", "{out}/p.pth"), 2, "SavedModel"))
    os.symlink(d / "does-not-exist.pb", d / "dangling.pb")
    entries.append(Entry("convert:dangling-link", ("convert", "tf2torch", "{d}/dangling.pb", "-o", "{out}/p.pth"), 2, "no such file"))
    entries.append(Entry("convert:missing-out-folder", ("convert", "tf2torch", "{src}", "-o", "{out}/missing/p.pth"), 2, "does not exist",
                         names="p.pth"))
    entries.append(Entry("convert:read-only-fs", ("convert", "tf2torch", "{src}", "-o", "/proc/tfport_p.pth"), 2, "/proc",
                         names="tfport_p"))

    # --- candidates for parity ----------------------------------------------------------
    good = ported.read_bytes()
    par("empty.pth", b"")
    par("random.pth", rand(4000))
    par("truncated.pth", _truncate(good))
    par("payload.pth", _torch_payload(d / "PWNED-parity:payload.pth"), mentions="refused", payload=True)
    par("payload_plain_pickle.pth", pickle.dumps(Payload(str(d / "PWNED-parity:payload_plain_pickle.pth"))), payload=True)
    par("nan.pth", _mutated_checkpoint(ported, "nan"), mentions="NaN")
    par("inf.pth", _mutated_checkpoint(ported, "inf"), mentions="NaN or Inf")
    par("wrong_shape.pth", _mutated_checkpoint(ported, "shape"), mentions="do not fit")
    par("bad_metadata.pth", _mutated_checkpoint(ported, "metadata"), mentions="metadata")
    par("random.onnx", rand(2000))
    export = ported.with_suffix(".onnx")  # the ONNX export beside the port, its data named at ../../x
    hostile.onnx_external_data(export, d / "external_data.onnx")
    entries.append(Entry("parity:external_data.onnx", ("parity", "check", "{d}/external_data.onnx", "--source",
                                                      "{src}"), 2, "../../x"))
    par("random.npy", rand(200))
    # MMdnn artifacts: weights .npy carrying a payload, beside emitted code
    (d / "mmdnn_payload.py").write_text("raise SystemExit('emitted code must not matter here')\n")
    np.save(d / "mmdnn_payload.npy", np.array(Payload(str(d / "PWNED-repair:mmdnn_payload")), dtype=object), allow_pickle=True)
    entries.append(Entry("repair:mmdnn_payload", ("convert", "repair", "{d}/mmdnn_payload.py", "--source", "{src}", "-o",
                                                  "{out}/fixed.pth"), 2, "unsafe", True))
    (d / "mmdnn_random.py").write_text("")
    (d / "mmdnn_random.npy").write_bytes(rand(500))
    entries.append(Entry("repair:mmdnn_random_npy", ("convert", "repair", "{d}/mmdnn_random.py", "--source", "{src}", "-o",
                                                     "{out}/fixed.pth"), 2, "mmdnn_random.npy"))
    # a pickled "MMdnn model" (torch.save of a whole module is a pickle of classes): refused, not run
    with open(d / "pickled_model.pth", "wb") as f:
        pickle.dump({"model": Payload(str(d / "PWNED-parity:pickled_model.pth"))}, f)
    entries.append(Entry("parity:pickled_model.pth", ("parity", "check", "{d}/pickled_model.pth", "--source", "{src}"), 2, "",
                         True))
    entries.append(Entry("parity:missing-source", ("parity", "check", "{ported}", "--source", "{d}/missing.pb"), 2, "not found",
                         names="missing.pb"))
    entries.append(Entry("parity:json-in-missing-folder", ("parity", "check", "{ported}", "--json", "{out}/missing/r.json"), 2,
                         "does not exist", names="r.json"))
    return entries


def _torch_payload(marker: Path) -> bytes:
    import io

    import torch

    buf = io.BytesIO()
    torch.save({"format": "tfport.ported", "version": 1, "state_dict": {"w": Payload(str(marker))}, "metadata": "{}"}, buf)
    return buf.getvalue()


def _mutated_checkpoint(ported: Path, how: str) -> bytes:
    import io
    import json

    import torch

    obj = torch.load(ported, weights_only=True)
    sd = obj["state_dict"]
    if how == "nan":
        sd["features.4.conv.1.0.weight"][0, 0, 0, 0] = float("nan")
    elif how == "inf":
        sd["features.0.1.running_var"][3] = float("inf")
    elif how == "shape":
        sd["features.2.conv.0.0.weight"] = torch.zeros(7, 7, 1, 1)
    elif how == "metadata":
        obj["metadata"] = json.dumps({"alpha": "wide"})
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


