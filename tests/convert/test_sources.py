"""README "Sources, as users' tools write them": the form is read from the file's own bytes, BN decay from
each Keras layer's config, an open input size from --input-size, and preprocessing that is not a per-channel
affine is refused in one line. Files are the session's samples or tiny tf_keras models written here."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from convert.runtime.errors import TfportError


@pytest.mark.parametrize("form,name,detected", [
    ("keras2_h5", "model.pb", "keras_h5"),
    ("keras3", "model.h5", "keras_zip"),
    ("slim_pb", "model.keras", "graph_pb"),
    ("savedmodel", "model.h5", "savedmodel"),
], ids=["h5-named-pb", "keras-named-h5", "pb-named-keras", "savedmodel-named-h5"])
def test_the_form_comes_from_the_bytes_not_the_name(samples, tmp_path, form, name, detected):
    from convert.sources import detect_form

    src = samples.get(form, 1.0, (96, 96))
    copy = tmp_path / name
    (shutil.copytree if src.is_dir() else shutil.copyfile)(src, copy)
    assert detect_form(copy).name == detected
    # (TFLite by its TFL3 identifier: tests/convert/test_tflite_source.py::test_detect_by_content)


def test_bn_decay_comes_from_each_layers_config(samples, tmp_path):
    """One BatchNormalization's `momentum` (TF decay) changed to 0.9 in the .h5's config: that layer alone gets
    PyTorch momentum 0.1 in the port, every other 1 - 0.999."""
    import h5py

    from convert.port.canonical import to_torchvision
    from convert.sources import load_source

    path = tmp_path / "decay.h5"
    shutil.copyfile(samples.get("keras2_h5", 0.35, (96, 96)), path)
    with h5py.File(path, "r+") as f:
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        (bn,) = [x for x in config["config"]["layers"] if x["config"]["name"] == "block_5_depthwise_BN"]
        assert bn["config"]["momentum"] == 0.999
        bn["config"]["momentum"] = 0.9
        f.attrs["model_config"] = json.dumps(config)
    source = load_source(path)
    decays = [b.decay for b in source.spec.bns]
    assert decays.count(0.9) == 1 and decays.count(0.999) == 51
    momenta = {k: b["momentum"] for k, b in to_torchvision(source.spec, str(path)).meta["bn"].items()}
    assert momenta.pop("features.6.conv.1.1") == pytest.approx(0.1)  # block 5's depthwise BN
    assert all(m == pytest.approx(0.001) for m in momenta.values())


def _tiny(build, tmp_path, name: str):
    """A tf_keras MobileNetV2 (alpha 0.35) behind `build`'s input ops, frozen as a .pb."""
    import tf_keras

    from convert.sample import frozen_graph_def

    tf_keras.utils.set_random_seed(0)
    path = tmp_path / f"{name}.pb"
    path.write_bytes(frozen_graph_def(build(tf_keras)).SerializeToString())
    return path


def _base(K, hw):
    return K.applications.MobileNetV2(input_shape=(*hw, 3), alpha=0.35, weights=None, include_top=False,
                                      pooling="avg")


def test_an_open_input_size_needs_input_size(tmp_path):
    from convert.sources import load_source

    pb = _tiny(lambda K: _base(K, (None, None)), tmp_path, "open")
    with pytest.raises(TfportError, match="input size is not fixed in the graph; give --input-size HxW"):
        load_source(pb)
    assert load_source(pb, (64, 48)).spec.input_shape[:2] == (64, 48)


SCALE, OFFSET = np.array([0.0171, 0.0175, 0.0174]), np.array([-2.118, -2.036, -1.804])  # ImageNet mean/std


def _multiply_add(K):
    """The affine as Keras's Multiply and Add layers with constant operands, under names that say nothing: no
    Lambda, no Rescaling or Normalization, and op types (Mul, AddV2) every residual block has too."""
    import tensorflow as tf

    inp = K.Input((32, 32, 3))
    x = K.layers.Multiply(name="mixing_a")([inp, tf.constant(SCALE.reshape(1, 1, 1, 3), tf.float32)])
    x = K.layers.Add(name="mixing_b")([x, tf.constant(OFFSET.reshape(1, 1, 1, 3), tf.float32)])
    return K.Model(inp, _base(K, (32, 32))(x))


def test_an_affine_of_multiply_and_add_layers_is_found_by_its_numbers(tmp_path):
    """README: preprocessing is found numerically, never by name: here neither a name nor an op type shows it."""
    from convert.sources import load_source

    pb = _tiny(_multiply_add, tmp_path, "multiply_add")
    pre = load_source(pb).spec.preprocess
    assert pre is not None
    assert np.asarray(pre.scale) == pytest.approx(SCALE, rel=1e-5)
    assert np.asarray(pre.offset) == pytest.approx(OFFSET, rel=1e-5, abs=1e-6)


def _resize(K):
    inp = K.Input((64, 64, 3))
    return K.Model(inp, _base(K, (32, 32))(K.layers.Resizing(32, 32)(inp)))


def _colour_swap(K):
    import tensorflow as tf

    inp = K.Input((32, 32, 3))
    return K.Model(inp, _base(K, (32, 32))(tf.reverse(inp, axis=[-1])))  # RGB -> BGR: an op layer, no code


@pytest.mark.parametrize("build,says", [(_resize, "turn the 64x64x3 input into"),
                                        (_colour_swap, "are not a per-channel affine")],
                         ids=["resize", "colour-swap"])
def test_preprocessing_other_than_an_affine_is_refused_in_one_line(tmp_path, build, says):
    from convert.sources import load_source

    pb = _tiny(build, tmp_path, build.__name__)
    with pytest.raises(TfportError, match=says) as e:
        load_source(pb)
    assert "\n" not in str(e.value) and str(pb) in str(e.value)
