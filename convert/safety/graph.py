"""TensorFlow graphs checked as data: every node of a GraphDef and of every function in its library
(If/While bodies, StatefulPartitionedCall targets, a SavedModel's serving and Keras functions, the
learning-phase branches of TF1-era Keras before they are folded), against `ops.TF_OPS`.

Called by each source form on the file's own graph, before TF builds a session or calls a function,
and again on the frozen graph every form reduces to (convert.sources.base.graph_source).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from convert.model.tf_names import node_name
from convert.runtime.errors import fail
from convert.safety.ops import TF_OPS, TF_RESTORE_OPS, TF_SAVE_OPS, why_refused
from convert.safety.refusal import Unsafe, refuse_unless_trusted


def _called(node) -> Iterator[str]:
    """The functions a node refers to (f, then_branch, body, ... and lists of them)."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        if value.HasField("list"):
            yield from (f.name for f in value.list.func)


def _closure(start: Iterable[str], items: dict, edges: Callable[[Any], Iterable[str]]) -> set[str]:
    """The names reachable from `start` through `edges`, among those in `items`."""
    todo, seen = list(start), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in items:
            continue
        seen.add(name)
        todo.extend(edges(items[name]))
    return seen


def _reach(nodes: Iterable, library) -> set[str]:
    """Every library function the nodes call, directly or through other functions."""
    bodies = {f.signature.name: f for f in library.function}
    return _closure((name for n in nodes for name in _called(n)), bodies,
                    lambda fn: (c for n in fn.node_def for c in _called(n)))


def findings(graph_def, extra: Iterable[tuple[frozenset[str], frozenset[str]]] = ()) -> list[Unsafe]:
    """Every node outside the allowlist, top level first, then the functions in library order.
    `extra`: (top-level node names, ops) pairs: those nodes and the functions they call may also hold
    those ops (a SavedModel's saver: its checkpoint reads in the restore op, its writes in the save op)."""
    node_extra: dict[str, set[str]] = {}
    fn_extra: dict[str, set[str]] = {}
    for names, ops in extra:
        for name in names:
            node_extra.setdefault(name, set()).update(ops)
        for fn in _reach([n for n in graph_def.node if n.name in names], graph_def.library):
            fn_extra.setdefault(fn, set()).update(ops)
    out = [Unsafe(n.name, n.op, why_refused(n.op)) for n in graph_def.node
           if n.op not in TF_OPS and n.op not in node_extra.get(n.name, ())]
    for fn in graph_def.library.function:
        more = fn_extra.get(fn.signature.name, ())
        out += [Unsafe(f"{fn.signature.name}/{n.name}", n.op, why_refused(n.op)) for n in fn.node_def
                if n.op not in TF_OPS and n.op not in more]
    return out


def check_graph_def(graph_def, where: str, trust_code: bool) -> list[str]:
    """Refuse a GraphDef holding any op outside the allowlist (unless trusted); returns what was trusted."""
    return refuse_unless_trusted(where, findings(graph_def), trust_code)


def _upstream(graph_def, names: Iterable[str]) -> frozenset[str]:
    """The named nodes and every top-level node they depend on (data and control inputs)."""
    by_name = {n.name: n for n in graph_def.node}
    return frozenset(_closure((node_name(t) for t in names if t), by_name,
                              lambda node: (node_name(i) for i in node.input)))


def read_saved_model(path: Path):
    """saved_model.pb (or .pbtxt) as a SavedModel proto: data, nothing loaded or run."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    binary = path / "saved_model.pb"
    try:
        if binary.exists():
            proto.ParseFromString(binary.read_bytes())
        else:
            text_format.Parse((path / "saved_model.pbtxt").read_text(), proto)
    except Exception as e:  # noqa: BLE001  (protobuf's DecodeError, ParseError, OSError, UnicodeDecodeError)
        raise fail(f"{path}: cannot load the SavedModel (corrupt saved_model.pb: {type(e).__name__})") from None
    return proto


def check_saved_model(path: Path, trust_code: bool) -> list[str]:
    """Every meta graph of a SavedModel folder, before `tf.saved_model.load` (which runs a TF1 model's
    restore and init ops, and whose functions the conversion calls)."""
    found: list[Unsafe] = []
    for meta in read_saved_model(path).meta_graphs:
        gd, s = meta.graph_def, meta.saver_def
        found += findings(gd, [(_upstream(gd, [s.save_tensor_name]), TF_SAVE_OPS),
                               (_upstream(gd, [s.restore_op_name]), TF_RESTORE_OPS)])
    return refuse_unless_trusted(str(path), found, trust_code)


def compute_only(graph_def, outputs: list[str]):
    """The graph without the side effects a user let run with --trust-code: nodes outside the allowlist that
    no data edge reads (a WriteFile waited for through a control edge) are dropped, with the control edges to
    them, and only what `outputs` need is kept. The TF reference ran them; a converter (MMdnn) need not."""
    import tensorflow as tf

    read = {i.split(":")[0] for n in graph_def.node for i in n.input if not i.startswith("^")}
    drop = {n.name for n in graph_def.node if n.op not in TF_OPS and n.name not in read}
    if not drop:
        return graph_def
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    for n in out.node:
        keep = [i for i in n.input if not (i.startswith("^") and i[1:] in drop)]
        del n.input[:]
        n.input.extend(keep)
    return tf.compat.v1.graph_util.extract_sub_graph(out, [o.split(":")[0] for o in outputs])
