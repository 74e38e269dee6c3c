"""Hostile files, written by the real tools the way an attacker would write them (issue 21).

Graphs whose ops reach the file system (`tf.io.write_file` into a marker: proof that the op ran), archives
that inflate without bound or name a path outside, HDF5 files linking to other files, ONNX files whose
external data lies outside their folder. Each writer takes a good file of the project's own zoo and
adds the one hostile thing, so that nothing else about it is wrong.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

NODE = "model/telemetry"  # the WriteFile node's name, as the user found it
BOMB_BYTES = 2 << 30  # config.json's declared inflated size: 2 GiB of whitespace (~9 MB at deflate level 1)
ALPHA, SIZE = 0.35, 96


def _net():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    return tf_keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), alpha=ALPHA, weights=None,
                                             include_top=False, pooling="avg")


def write_file_pb(path: Path, marker: Path, good: Path) -> Path:
    """A good frozen graph (`good`: a .pb with one output) whose output gains a control edge from a WriteFile
    node named model/telemetry."""
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(good.read_bytes())
    used = {name.split(":")[0].lstrip("^") for n in gd.node for name in n.input}
    (output,) = [n.name for n in gd.node if n.name not in used]
    g = tf.Graph()
    with g.as_default():
        tf.graph_util.import_graph_def(gd, name="")
        tf.io.write_file(str(marker), "ran", name=NODE)
    out = g.as_graph_def()
    next(n for n in out.node if n.name == output).input.append("^" + NODE)  # the output now waits for it
    path.write_bytes(out.SerializeToString())
    return path


def if_branch_pb(path: Path, marker: Path) -> Path:
    """A frozen graph whose output goes through an If whose then-branch (a library function) writes files."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    net = _net()

    def forward(x):
        y = net(x, training=False)

        def then():
            with tf.control_dependencies([tf.io.write_file(str(marker), "ran")]):
                return tf.identity(y)

        return tf.cond(tf.reduce_max(x) > -1e9, then, lambda: tf.identity(y))

    fn = tf.function(forward).get_concrete_function(tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32, name="input"))
    gd = convert_variables_to_constants_v2(fn, lower_control_flow=False).graph.as_graph_def()
    assert any(n.op == "If" for n in gd.node), "tf.cond was lowered: the If branch is not in the file"
    path.write_bytes(gd.SerializeToString())
    return path


def write_file_savedmodel(path: Path, marker: Path) -> Path:
    """A TF-Hub-style SavedModel whose serving function calls tf.io.write_file beside the forward pass."""
    import tensorflow as tf

    from tests.zoo.keras_models import variables_module

    net = _net()

    @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="images")])
    def serve(images):
        tf.io.write_file(str(marker), "ran")
        return {"features": net(images, training=False)}

    module = variables_module(net)
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    return path


def flex_tflite(path: Path) -> Path | None:
    """A TFLite model holding a select-TF (Flex) op, as the converter writes one when allowed to; None
    where this converter will not write one."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32)])
    def f(x):
        return tf.math.cumprod(x, axis=1)  # no TFLite builtin: the converter writes FlexCumprod

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    data = conv.convert()
    if b"Flex" not in data:
        return None
    path.write_bytes(data)
    return path


def zip_bomb_keras(good: Path, path: Path, size: int = BOMB_BYTES) -> Path:
    """A good .keras whose config.json is still valid JSON, padded with `size` bytes of whitespace: written
    streamed (deflate level 1, ~230:1), so the test never holds or writes the inflated bytes."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            if info.filename != "config.json":
                dst.writestr(info, src.read(info))
                continue
            with dst.open("config.json", "w", force_zip64=True) as out:  # by name: the archive's level 1
                out.write(src.read(info))
                chunk = b" " * (64 << 20)
                for _ in range(size // len(chunk)):
                    out.write(chunk)
    return path


def zip_slip_keras(good: Path, path: Path, member: str = "../../tfport_slipped.txt") -> Path:
    shutil.copyfile(good, path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(zipfile.ZipInfo(member), "slipped")
    return path


def zip_bomb_pth(good: Path, path: Path, size: int = BOMB_BYTES) -> Path:
    """A torch checkpoint (a zip) with a record that inflates to `size` bytes."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))  # as torch wrote them: stored
        prefix = src.namelist()[0].split("/")[0]
        with dst.open(f"{prefix}/data/bomb", "w", force_zip64=True) as out:  # by name: deflated, level 1
            chunk = b"\0" * (64 << 20)
            for _ in range(size // len(chunk)):
                out.write(chunk)
    return path


def zip_slip_pth(good: Path, path: Path, member: str = "/tmp/tfport_slipped.bin") -> Path:
    shutil.copyfile(good, path)
    with zipfile.ZipFile(path, "a") as z:
        z.writestr(zipfile.ZipInfo(member), b"\0" * 16)
    return path


def h5_external_link(good: Path, path: Path, other: Path) -> Path:
    """A good Keras .h5 whose model_weights group links (HDF5 external link) into another file."""
    import h5py
    import numpy as np

    with h5py.File(other, "w") as f:
        f["secret"] = np.arange(4.0)
    shutil.copyfile(good, path)
    with h5py.File(path, "a") as f:
        f["model_weights"]["telemetry"] = h5py.ExternalLink(str(other), "/")
    return path


def onnx_external_data(good: Path, path: Path, location: str = "../../x") -> Path:
    """A good ONNX export whose largest initializer names its data at `location` (outside its folder)."""
    import onnx
    from onnx.external_data_helper import set_external_data

    model = onnx.load(str(good))
    big = max(model.graph.initializer, key=lambda t: len(t.raw_data))
    set_external_data(big, location=location)
    big.ClearField("raw_data")
    big.data_location = onnx.TensorProto.EXTERNAL
    path.write_bytes(model.SerializeToString())
    return path
