"""Frozen GraphDefs (`.pb`): TF-slim exports, TF2 `convert_variables_to_constants_v2`, TF1-era Keras.

A GraphDef has no magic bytes: this form is the fallback, tried last, and it is a GraphDef when
protobuf parses it into nodes. TF1-era Keras graphs keep every BatchNorm behind the learning-phase
switch; that switch is resolved to inference first (`convert.readers.learning_phase`), after which the graph is an
ordinary inference graph.
"""

from __future__ import annotations

from pathlib import Path

from convert.sources.base import LoadOptions, Source, graph_source, register, trust

_CONTROL_FLOW = {"Switch", "Merge", "If", "StatelessIf"}


def _is_graph_def(path: Path) -> bool:
    """The fallback. A `.pb` (or extensionless) file is taken as a GraphDef, so that a damaged one gets the
    parser's own one-line error; any other name only when its bytes parse into a graph of named ops."""
    if not path.is_file():
        return False
    if path.suffix in (".pb", ".graphdef", ""):
        return True
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    gd = tf.compat.v1.GraphDef()
    try:
        gd.ParseFromString(path.read_bytes())
    except (DecodeError, ValueError, RuntimeError, OSError):  # what protobuf says of bytes it cannot parse
        return False
    return bool(gd.node) and all(n.op and n.name for n in gd.node)


@register("graph_pb", _is_graph_def)
def load(path: Path, opts: LoadOptions) -> Source:
    from convert.readers.tf_graph import parse_graph_def
    from convert.safety.graph import check_graph_def

    gd = parse_graph_def(path.read_bytes(), str(path))
    trusted = check_graph_def(gd, str(path), opts.trust_code)  # the file as written, before folding
    notes: list[str] = []
    if any(n.op in _CONTROL_FLOW for n in gd.node):
        from convert.readers.learning_phase import fold_learning_phase

        gd, notes = fold_learning_phase(gd, str(path))
    source = graph_source(path, "graph_pb", gd, opts)
    trust(source.spec, trusted)
    source.notes.extend(notes)
    return source
