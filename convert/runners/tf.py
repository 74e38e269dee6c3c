"""TensorFlow as the reference: a frozen GraphDef run in graph mode, named tensors fetched per batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from convert.model.tf_names import data_consumers, downstream, node_name
from convert.readers.tf_graph import GraphInfo


def per_probe(r: np.ndarray, n: int, maps: bool = False) -> np.ndarray:
    """A fetched tensor as the runners return it: (n, -1) where not a feature map or a 1x1 one (a pooled
    tensor that kept its dims); `maps`: every 4-D tensor kept as it is."""
    return r.reshape(n, -1) if r.ndim != 4 or (r.shape[1:3] == (1, 1) and not maps) else r


def session_config():
    """The graph run as written: Grappler off. A session builds one executor per distinct set of fetches,
    and Grappler optimises the whole graph again for each (ResNet50 at 224: 1.2-1.5 s each, against 0.4 s
    without; parity fetches one set in eval mode and one per part in train mode). Its rewrites (fused
    Conv+BN kernels) are TF's implementation, not the model: the values differ from the unfused graph's by
    ~2e-6 relative, 50x inside parity's tolerance."""
    import tensorflow as tf

    config = tf.compat.v1.ConfigProto()
    config.graph_options.rewrite_options.disable_meta_optimizer = True
    return config


class TFRunner:
    """Runs a frozen GraphDef in TF (graph mode) and fetches named tensors, batch by batch."""

    def __init__(self, gd, info: GraphInfo) -> None:
        import tensorflow as tf

        self.info = info
        take = getattr(info, "take_imported", None)  # the reader's import of this very GraphDef, used once
        self.graph = take(gd) if take is not None else None
        if self.graph is None:
            self.graph = tf.Graph()
            with self.graph.as_default():
                tf.compat.v1.import_graph_def(gd, name="")
        self.sess = tf.compat.v1.Session(graph=self.graph, config=session_config())
        self.batch = info.input_shape[0]  # None: any batch; slim graphs fix it to 1

    def close(self) -> None:
        """Release the session's buffers and the graph's constants (the weights: ResNet50's 100 MB) now,
        rather than when the runner itself goes."""
        if self.sess is not None:
            self.sess.close()
        self.sess = self.graph = None

    def fresh_session(self) -> None:
        """The session closed and another opened on the same graph. A session builds one executor per set of
        fetches, and each holds its own copy of every constant it runs (TF's stateless kernels are not shared
        between executors): parity's eval executor holds the weights (ResNet50: 100 MB) while the train-mode
        parts build theirs. Closing it first holds one copy at a time, as two sessions one after the other do."""
        import tensorflow as tf

        self.sess.close()
        self.sess = tf.compat.v1.Session(graph=self.graph, config=session_config())

    def run(self, x: np.ndarray, fetches: list[str], progress: Callable[[int], None] | None = None,
            maps: bool = False) -> list[np.ndarray]:
        """Fetches per probe, flattened to (n, -1) where not a feature map or a 1x1 one (a pooled tensor
        kept its dims); `maps`: every 4-D tensor kept as it is (parity's probe points, where a 1x1 map
        late in a small input is still a map)."""
        step = self.batch or 16
        outs: list[list[np.ndarray]] = [[] for _ in fetches]
        for i in range(0, len(x), step):
            res = self.sess.run(fetches, {self.info.input: x[i : i + step]})
            for acc, r in zip(outs, res, strict=False):
                acc.append(per_probe(np.asarray(r), len(x[i : i + step]), maps))
            if progress:
                progress(min(i + step, len(x)))
        return [o[0] if len(o) == 1 else np.concatenate(o) for o in outs]

    def import_variant(self, gd, prefix: str, edit: Callable[[Any], None]) -> set[str]:
        """`gd`'s nodes that depend on the input, each edited by `edit` (a copy: `gd` is not changed), added to
        this runner's graph under `prefix/`; every other node (the weights, their reads) is this graph's own,
        so the variant holds no second copy of the weights and runs in this session (parity's train-mode
        graph: ResNet50's 100 MB of constants, a GraphDef copy and a session saved). The input is shared too.
        Returns the names of the nodes imported (their tensors are `prefix/name:k`)."""
        import tensorflow as tf

        data = downstream(data_consumers(gd), node_name(self.info.input))
        variant = tf.compat.v1.GraphDef()
        shared: dict[str, Any] = {}
        for node in gd.node:
            if node.name not in data:
                continue
            copy = variant.node.add()
            copy.CopyFrom(node)
            edit(copy)
            # a control input on a shared node (a NoOp, a constant) carries no value, and the shared node has
            # its place in the eval graph already: dropped (import_graph_def maps tensors, not operations)
            kept = [i for i in copy.input if not i.startswith("^") or i[1:] in data]
            del copy.input[:]
            copy.input.extend(kept)
            for i in kept:
                if node_name(i) not in data:
                    key = i if ":" in i else f"{i}:0"
                    shared[key] = self.graph.get_tensor_by_name(key)
        variant.versions.CopyFrom(gd.versions)
        variant.library.CopyFrom(gd.library)
        with self.graph.as_default():
            tf.compat.v1.import_graph_def(variant, input_map=shared, name=prefix)
        return data
