"""Resolve a TF1-era Keras learning-phase switch to inference by rewriting the frozen GraphDef.

Keras in graph mode builds every BatchNormalization (and Dropout) behind one bool placeholder, the
learning phase (`keras_learning_phase`, a PlaceholderWithDefault or a Placeholder): with v1 control
flow as `Switch`/`Merge`, with v2 control flow as `If`/`StatelessIf` whose branches are library
functions. Freezing keeps both branches because both feed the output, so a reader sees training-mode
BatchNorms although the inference branch is right there. The placeholder is recognised by what it
does (a bool placeholder feeding a Switch predicate or an If condition), never by its name.

What the fold reproduces statically, beside the TF executor's rules (v1 control flow):
  Switch(data, pred)   :0 (output_false) live iff pred is False, :1 (output_true) iff pred is True
  Merge(x0, x1, ...)   :0 the one live input, :1 its index; dead only when every input is dead
  any other op         dead when any data or control input is dead (a dead node's control edges too)
and for v2 control flow:
  If/StatelessIf(cond, *args)   the taken branch's FunctionDef inlined, its args wired to the If's inputs
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from convert.model.tf_names import node_name
from convert.runtime.errors import fail

if TYPE_CHECKING:
    from tensorflow.core.framework.graph_pb2 import GraphDef
    from tensorflow.core.framework.node_def_pb2 import NodeDef

_PASS_THROUGH = {"Identity", "Snapshot", "StopGradient"}
_SWITCH = {"Switch", "RefSwitch"}
_MERGE = {"Merge", "RefMerge"}
_IF = {"If", "StatelessIf"}
_PLACEHOLDERS = {"Placeholder", "PlaceholderWithDefault"}
_DT_BOOL = 10  # types_pb2.DT_BOOL, kept literal so a graph without a learning phase needs no TF import
_DEAD = object()  # what a tensor on the branch not taken reads as


def _canon(inp: str) -> str:
    """'x' and 'x:0' are the same tensor; keys use the explicit form."""
    return inp if ":" in inp else inp + ":0"


def _short(t: str) -> str:
    return t[:-2] if t.endswith(":0") else t


def fold_learning_phase(graph_def: GraphDef, where: str) -> tuple[GraphDef, list[str]]:
    """Return (graph with the learning phase fixed to False and only the inference path kept, notes).

    A graph without a learning phase comes back as the same object with no notes."""
    phases = _learning_phases(graph_def)
    if not phases:
        return graph_def, []
    if len(phases) > 1:
        names = ", ".join(f"'{p.name}'" for p in phases)
        raise fail(f"{where}: {len(phases)} bool placeholders ({names}) steer Switch/If ops; cannot tell which is "
                   "the learning phase")
    (phase,) = phases
    gd = type(graph_def)()
    gd.CopyFrom(graph_def)
    outputs = _sinks(gd)  # fixed now: inlined bodies add sinks (unused If outputs) that are not outputs
    notes = [f"learning phase '{phase.name}' ({phase.op}) fixed to False"]
    _make_false(next(n for n in gd.node if n.name == phase.name))
    folded: Counter[str] = Counter()
    while True:  # inlined If bodies may hold more control flow, and a Switch may hide an If
        gd, outputs = _fold_switches(gd, outputs, where, folded)
        gd, inlined = _inline_ifs(gd, outputs, where, folded)
        if not inlined:
            break
    gd = _prune(gd, outputs)
    _refuse_leftover_control_flow(gd, where)
    if folded["Switch"] or folded["Merge"]:
        notes.append(f"{folded['Switch']} Switch and {folded['Merge']} Merge resolved to the inference branch")
    notes += [f"{k} {key} inlined" for key, k in sorted(folded.items()) if key.startswith(("If", "StatelessIf"))]
    notes.append(f"nodes: {len(graph_def.node)} -> {len(gd.node)}, only the inference path kept")
    return gd, notes


# --- finding and fixing the learning phase ------------------------------------------------------
def _learning_phases(gd: GraphDef) -> list[NodeDef]:
    """Bool placeholders that reach a Switch predicate or an If condition through pass-through ops."""
    nodes = {n.name: n for n in gd.node}
    found: dict[str, NodeDef] = {}
    for n in gd.node:
        if n.op in _SWITCH and len(n.input) > 1:
            start = n.input[1]
        elif n.op in _IF and n.input:
            start = n.input[0]
        else:
            continue
        node = nodes.get(node_name(start))
        while node is not None and (node.op in _PASS_THROUGH or node.op in _SWITCH) and node.input:
            node = nodes.get(node_name(node.input[0]))  # a Switch forwards its data input to nested conds
        if node is not None and node.op in _PLACEHOLDERS and node.attr["dtype"].type == _DT_BOOL:
            found[node.name] = node
    return list(found.values())


def _make_false(node: NodeDef) -> None:
    """Turn the placeholder into Const False in place: its name, hence every consumer, stays."""
    from tensorflow.python.framework import tensor_util

    node.op = "Const"
    del node.input[:]
    node.attr.clear()
    node.attr["dtype"].type = _DT_BOOL
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(False))


def _const_bool(t: str, nodes: dict[str, NodeDef]) -> bool | None:
    """The value of a scalar bool tensor computed from constants only (Const, pass-through, LogicalNot)."""
    from tensorflow.python.framework import tensor_util

    negate = False
    node = nodes.get(node_name(t))
    while node is not None and (node.op in _PASS_THROUGH or node.op == "LogicalNot"):
        negate ^= node.op == "LogicalNot"
        node = nodes.get(node_name(node.input[0]))
    if node is None or node.op != "Const" or node.attr["dtype"].type != _DT_BOOL:
        return None
    value = tensor_util.MakeNdarray(node.attr["value"].tensor)
    return None if value.size != 1 else bool(value.reshape(())) ^ negate


# --- v1 control flow: Switch / Merge ------------------------------------------------------------
def _fold_switches(gd: GraphDef, outputs: list[str], where: str, folded: Counter) -> tuple[GraphDef, list[str]]:
    """Propagate deadness in execution order; resolved Switch/Merge vanish, dead nodes are dropped."""
    from tensorflow.python.framework import tensor_util

    alias: dict[str, object] = {}  # tensor of a resolved Switch/Merge -> the tensor it reads as, or _DEAD
    dead: set[str] = set()
    gone: set[str] = set()  # resolved Switch/Merge: live, but no longer in the graph
    taken = {n.name for n in gd.node}
    kept: dict[str, NodeDef] = {}
    extra: list[NodeDef] = []
    for n in _topo(gd, where):
        data = [_DEAD if node_name(i) in dead else alias.get(_canon(i), i) for i in n.input if not i.startswith("^")]
        ctrl = [_DEAD if node_name(i) in dead else i for i in n.input if i.startswith("^") and node_name(i) not in gone]
        if n.op in _MERGE and _DEAD not in ctrl:
            live = [(k, i) for k, i in enumerate(data) if i is not _DEAD]
            if not live:
                dead.add(n.name)
                continue
            if len(live) == 1:
                (k, src), index = live[0], _fresh(f"{n.name}/value_index", taken)
                extra.append(_const_node(index, tensor_util.make_tensor_proto(k, dtype="int32")))
                alias[n.name + ":0"], alias[n.name + ":1"] = src, index + ":0"
                gone.add(n.name)
                folded["Merge"] += 1
                continue
            data = [i for _, i in live]
        elif _DEAD in data or _DEAD in ctrl:
            dead.add(n.name)
            continue
        elif n.op in _SWITCH and (pred := _const_bool(data[1], kept)) is not None:
            alias[f"{n.name}:{int(pred)}"], alias[f"{n.name}:{int(not pred)}"] = data[0], _DEAD
            gone.add(n.name)
            folded["Switch"] += 1
            continue
        new = _copy(n)
        del new.input[:]
        new.input.extend([_short(_canon(i)) for i in data] + ctrl)
        if n.op in _MERGE:
            new.attr["N"].i = len(data)
        kept[n.name] = new
    new_outputs = []
    for name in outputs:
        if name in kept:
            new_outputs.append(name)
        elif name in gone and isinstance(src := alias.get(name + ":0"), str):  # an output Merge keeps its name
            kept[name] = _identity(name, [src], "T", next(n for n in gd.node if n.name == name).attr["T"])
            new_outputs.append(name)
    if not new_outputs:
        raise fail(f"{where}: every output lies on the training branch; nothing is left for inference")
    return _graph(gd, [kept[n.name] for n in gd.node if n.name in kept] + extra), new_outputs


def _topo(gd: GraphDef, where: str) -> list[NodeDef]:
    """Nodes in execution order (Kahn over data and control edges)."""
    nodes = {n.name: n for n in gd.node}
    edges: dict[str, list[str]] = {}
    indeg = dict.fromkeys(nodes, 0)
    for n in gd.node:
        for i in n.input:
            if node_name(i) not in nodes:
                raise fail(f"{where}: node '{n.name}' reads '{node_name(i)}', which is not in the graph")
            edges.setdefault(node_name(i), []).append(n.name)
            indeg[n.name] += 1
    ready = [n.name for n in gd.node if indeg[n.name] == 0]
    order = []
    while ready:
        name = ready.pop()
        order.append(nodes[name])
        for c in edges.get(name, []):
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if len(order) != len(nodes):
        raise fail(f"{where}: the graph has a cycle (a tf.while_loop?); only conditionals can be folded")
    return order


# --- v2 control flow: If / StatelessIf ------------------------------------------------------------
def _inline_ifs(gd: GraphDef, outputs: list[str], where: str, folded: Counter) -> tuple[GraphDef, int]:
    """Replace each If whose condition is constant by the nodes of its taken branch."""
    nodes = {n.name: n for n in gd.node}
    functions = {f.signature.name: f for f in gd.library.function}
    taken = set(nodes)
    alias: dict[str, str] = {}
    ctrl_alias: dict[str, list[str]] = {}
    bodies: dict[str, list[NodeDef]] = {}
    for n in gd.node:
        if n.op not in _IF or (pred := _const_bool(n.input[0], nodes)) is None:
            continue
        branch = "then" if pred else "else"
        fname = n.attr[f"{branch}_branch"].func.name
        if fname not in functions:
            raise fail(f"{where}: {n.op} '{n.name}' calls '{fname}', which is not in the graph's function library")
        bodies[n.name], rets = _instantiate(n, functions[fname], f"{n.name}/{branch}/", taken, functions, where)
        alias.update({f"{n.name}:{k}": t for k, t in enumerate(rets)})
        ctrl_alias["^" + n.name] = sorted({"^" + node_name(t) for t in rets})
        if n.name in outputs:  # an output If keeps its name
            bodies[n.name].append(_identity(n.name, rets, "T", n.attr["Tout"], op="IdentityN"))
        folded[f"{n.op} ({branch} branch)"] += 1
    if not bodies:
        return gd, 0
    out = []
    for m in (m for n in gd.node for m in bodies.get(n.name, [n])):
        new = _copy(m)
        del new.input[:]
        for i in m.input:
            new.input.extend(ctrl_alias.get(i, [i]) if i.startswith("^") else [_short(alias.get(_canon(i), i))])
        out.append(new)
    return _graph(gd, out), len(bodies)


def _instantiate(call: NodeDef, fdef, prefix: str, taken: set[str], functions: dict, where: str
                 ) -> tuple[list[NodeDef], list[str]]:
    """The function's nodes renamed under `prefix`, its args read from the call's inputs; and its return tensors."""
    from tensorflow.python.framework import op_def_registry

    args = [i for i in call.input[1:] if not i.startswith("^")]
    call_ctrl = [i for i in call.input if i.startswith("^")]
    if len(args) != len(fdef.signature.input_arg):
        raise fail(f"{where}: {call.op} '{call.name}' passes {len(args)} inputs to '{fdef.signature.name}', "
                   f"which takes {len(fdef.signature.input_arg)}")
    flat = {a.name: _canon(args[k]) for k, a in enumerate(fdef.signature.input_arg)}  # function -> graph tensor
    rename = {nd.name: _fresh(prefix + nd.name, taken) for nd in fdef.node_def}
    for nd in fdef.node_def:
        if any(v.placeholder for v in nd.attr.values()):
            raise fail(f"{where}: {call.op} '{call.name}' calls a function with attribute placeholders; "
                       "cannot inline it")
        op_def = functions[nd.op].signature if nd.op in functions else op_def_registry.get(nd.op)
        if op_def is None:
            raise fail(f"{where}: {call.op} '{call.name}' runs op '{nd.op}', unknown to this TensorFlow")
        index = 0
        for arg in op_def.output_arg:  # FunctionDef names outputs 'node:arg:k', GraphDef 'node:flat index'
            count = (nd.attr[arg.number_attr].i if arg.number_attr else
                     len(nd.attr[arg.type_list_attr].list.type) if arg.type_list_attr else 1)
            for k in range(count):
                flat[f"{nd.name}:{arg.name}:{k}"] = f"{rename[nd.name]}:{index}"
                index += 1
    nodes = []
    try:
        for nd in fdef.node_def:
            new = _copy(nd)
            new.name = rename[nd.name]
            ins = ["^" + (node_name(flat[i[1:]]) if i[1:] in flat else rename[i[1:]]) if i.startswith("^")
                   else _short(flat[i]) for i in nd.input]
            del new.input[:]
            new.input.extend(ins or call_ctrl)  # sources keep the call's ordering
            nodes.append(new)
        rets = [flat[fdef.ret[a.name]] for a in fdef.signature.output_arg]
    except KeyError as e:
        raise fail(f"{where}: function '{fdef.signature.name}' of '{call.name}' reads {e}, "
                   "which it does not define") from None
    return nodes, rets


# --- pruning and checks ---------------------------------------------------------------------------
def _sinks(gd: GraphDef) -> list[str]:
    """Nodes nothing reads: the graph's outputs (constants and no-ops left dangling are not)."""
    read = {node_name(i) for n in gd.node for i in n.input}
    return [n.name for n in gd.node if n.name not in read and n.op not in ("Const", "NoOp")]


def _prune(gd: GraphDef, outputs: list[str]) -> GraphDef:
    """Keep only what the outputs need; drop the library functions nothing calls any more."""
    nodes = {n.name: n for n in gd.node}
    need, stack = set(), list(outputs)
    while stack:
        name = stack.pop()
        if name not in need:
            need.add(name)
            stack.extend(node_name(i) for i in nodes[name].input)
    out = _graph(gd, [n for n in gd.node if n.name in need])
    functions = {f.signature.name: f for f in gd.library.function}
    used, stack = set(), [f for n in out.node for f in _calls(n, functions)]
    while stack:
        name = stack.pop()
        if name not in used:
            used.add(name)
            stack.extend(f for nd in functions[name].node_def for f in _calls(nd, functions))
    del out.library.function[:], out.library.gradient[:]
    out.library.function.extend(f for f in gd.library.function if f.signature.name in used)
    out.library.gradient.extend(g for g in gd.library.gradient if g.function_name in used)
    return out


def _calls(node: NodeDef, functions: dict) -> list[str]:
    """Library functions a node names: as its op, or in a func / list(func) attribute."""
    attrs = node.attr.values()
    names = [node.op] + [v.func.name for v in attrs] + [f.name for v in attrs for f in v.list.func]
    return [f for f in names if f in functions]


def _refuse_leftover_control_flow(gd: GraphDef, where: str) -> None:
    """Control flow that the learning phase does not steer is not ours to fold: say which node it is."""
    why = "which is not constant once the learning phase is False; only learning-phase conditionals can be folded"
    for n in gd.node:
        if n.op in _SWITCH:
            raise fail(f"{where}: {n.op} '{n.name}' has predicate '{_short(n.input[1])}', {why}")
        if n.op in _IF:
            raise fail(f"{where}: {n.op} '{n.name}' has condition '{_short(n.input[0])}', {why}")
        if n.op in _MERGE:
            srcs = ", ".join(f"'{node_name(i)}'" for i in n.input if not i.startswith("^"))
            raise fail(f"{where}: {n.op} '{n.name}' joins {srcs}, more than one live input once the learning phase "
                       "is False; only learning-phase conditionals can be folded")


def _fresh(name: str, taken: set[str]) -> str:
    """`name`, or `name_1`, `name_2`, ...: the first that no node has."""
    k, candidate = 0, name
    while candidate in taken:
        k += 1
        candidate = f"{name}_{k}"
    taken.add(candidate)
    return candidate


def _copy(node: NodeDef) -> NodeDef:
    new = type(node)()
    new.CopyFrom(node)
    return new


def _graph(like: GraphDef, nodes: list[NodeDef]) -> GraphDef:
    """A GraphDef with `like`'s versions and function library and these nodes."""
    out = type(like)()
    out.versions.CopyFrom(like.versions)
    out.library.CopyFrom(like.library)
    out.node.extend(nodes)
    return out


def _const_node(name: str, tensor) -> NodeDef:
    from tensorflow.core.framework import node_def_pb2

    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tensor.dtype
    node.attr["value"].tensor.CopyFrom(tensor)
    return node


def _identity(name: str, srcs: list[str], type_key: str, types, op: str = "Identity") -> NodeDef:
    """An Identity(N) that keeps a resolved output's name, so fetching it still works."""
    from tensorflow.core.framework import node_def_pb2

    node = node_def_pb2.NodeDef(name=name, op=op, input=[_short(s) for s in srcs])
    node.attr[type_key].CopyFrom(types)
    return node
