"""TF's values fetched in parts, each op run once.

Parity's train stage fetches TF's probe points in parts (network order) so that only one part is held at
a time; a plain `session.run` per part runs the graph from its input again each time, so part k costs the
network up to its last point (ResNet50 at 224, 4 parts: TF ran ~2.5 networks' worth). Here each part's run
also fetches the few tensors later parts read from ops it ran (a block's output, a residual's input), and a
later run feeds them back: TF prunes everything upstream of a fed tensor, so every op runs once over all
parts. A fed tensor holds exactly the value the graph computed, so the values are the graph's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convert.runners.tf import per_probe

# ops whose outputs may be dead tensors (the untaken branch of a learning-phase Switch): never fetched to be
# fed back; a graph whose data path holds one is run part by part from its input, as before
CONTROL_FLOW = frozenset({"Switch", "RefSwitch", "Merge", "RefMerge", "Enter", "RefEnter", "Exit", "RefExit",
                          "NextIteration", "RefNextIteration", "LoopCond"})


@dataclass(frozen=True)
class PartStep:
    fetch: tuple[str, ...]  # the part's own tensors, in the caller's order
    feed: tuple[str, ...]  # tensors earlier steps fetched, fed back (everything upstream of them is pruned)
    keep: tuple[str, ...]  # tensors this step fetches (its own among them) for later steps to feed


def plan_parts(graph, input_name: str, parts: list[list[str]]) -> list[PartStep] | None:
    """One step per part: what it feeds from earlier steps and what it keeps for later ones. None where the
    graph's data path has control flow or a tensor that cannot be fed (then each part runs from the input)."""
    source = graph.get_tensor_by_name(input_name).op
    data = {source}  # ops that depend on the input: the only ones worth not running twice
    frontier = [source]
    while frontier:
        op = frontier.pop()
        for out in op.outputs:
            for consumer in out.consumers():
                if consumer not in data:
                    data.add(consumer)
                    frontier.append(consumer)
    if any(op.type in CONTROL_FLOW for op in data):
        return None
    ran: dict = {}  # op -> the last step that ran it
    feeds: list[set[str]] = []
    keeps: list[set[str]] = [set() for _ in parts]
    for k, part in enumerate(parts):
        fed: set[str] = set()
        need: set = set()
        stack = []
        for name in part:
            t = graph.get_tensor_by_name(name)
            if t.op in ran and t.op in data:
                fed.add(t.name)
                keeps[ran[t.op]].add(t.name)
            else:
                stack.append(t.op)
        while stack:
            op = stack.pop()
            if op in need:
                continue
            need.add(op)
            for t in op.inputs:
                if t.op is source:
                    continue  # the input is fed on every run
                if t.op in data and t.op in ran:
                    if not graph.is_feedable(t):
                        return None
                    fed.add(t.name)
                    keeps[ran[t.op]].add(t.name)
                else:
                    stack.append(t.op)
            stack.extend(op.control_inputs)  # a control input runs again where needed: correct, rare
        for op in need:
            ran[op] = k
        feeds.append(fed)
    return [PartStep(tuple(part), tuple(sorted(feeds[k])), tuple(sorted(keeps[k])))
            for k, part in enumerate(parts)]


class PartFetcher:
    """A TFRunner for one batch of probes whose planned fetch sets (the parts, in order) run each op once;
    any other fetch set is the runner's own `run`."""

    def __init__(self, runner, parts: list[list[str]]) -> None:
        self.runner = runner
        self.steps = plan_parts(runner.graph, runner.info.input, parts)
        self.index = {tuple(part): k for k, part in enumerate(parts)}
        self.cache: dict[str, np.ndarray] = {}

    def run(self, x: np.ndarray, fetches: list[str], maps: bool = False) -> list[np.ndarray]:
        k = self.index.get(tuple(fetches))
        if self.steps is None or k is None or (self.runner.batch or len(x)) < len(x):
            return self.runner.run(x, fetches, maps=maps)
        step = self.steps[k]
        if any(t not in self.cache for t in step.feed):  # a part fetched again, out of order: from the input
            return self.runner.run(x, fetches, maps=maps)
        feed = {self.runner.info.input: x, **{t: self.cache[t] for t in step.feed}}
        names = [*step.fetch, *(t for t in step.keep if t not in step.fetch)]
        got = dict(zip(names, self.runner.sess.run(names, feed), strict=True))
        self.cache.update((t, got[t]) for t in step.keep)
        later = {t for s in self.steps[k + 1:] for t in s.feed}
        for t in [t for t in self.cache if t not in later]:
            del self.cache[t]  # what no later part feeds is dropped now
        return [per_probe(np.asarray(got[t]), len(x), maps) for t in step.fetch]
