"""The one-cycle trainer: any registered backbone, the shared head, explicit freeze and BN policies.

A run is: validate everything (settings, data, backbone, parity gate, --resume plan) -> only then
create the output folder -> epochs of AdamW + OneCycleLR, each followed by validation, a table row,
an atomic checkpoint and the CSV log -> the loss-curve PNG and result.json. A non-finite training
loss stops the run at once (the weights would be garbage from that step on) with a line naming the
epoch and batch; a non-finite validation loss is recorded, as fastai shows it, and fails the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import OneCycleLR
from torch.utils.data.distributed import DistributedSampler

from backbones import augment, bn, dist, gate, registry, report, state
from backbones import data as kdata
from backbones import head as heads
from backbones import preprocess as pp
from backbones.batches import BatchSource, FeatureSource, ImageSource, eval_chunks
from backbones.bn_monitor import BNDrift, BNMonitor
from backbones.config import DIV_FACTOR, FINAL_DIV_FACTOR, PCT_START, TrainConfig
from backbones.dist import Context
from backbones.feature_cache import cacheable, compute_features
from backbones.results import EpochResult, TrainResult
from convert.runtime.errors import fail
from convert.runtime.files import sha256_file, write_text

# A head-only step (features cached) is a few small matmuls: waking a second OpenMP thread for each op costs more
# than it shares out until a step holds about this many multiply-adds per pass (batch rows x head parameters).
# Measured on 2 cores, passive waits, the default head on 1280 features (790 k parameters): one thread 2.4x
# faster at bs 16, 2.0x at 32, equal at 64-256, 0.85x at 512, 0.76x at 1024.
HEAD_ONE_THREAD_WORK = 2.0e8


@contextmanager
def head_threads(head: nn.Module, rows: int) -> Iterator[None]:
    """torch on one thread while `head` trains alone on `rows`-row batches small enough (HEAD_ONE_THREAD_WORK),
    the thread count restored after. The count follows from the batch alone, so a resumed run computes with the
    threads of the uninterrupted one."""
    work = rows * sum(p.numel() for p in head.parameters())
    before = torch.get_num_threads()
    if work > HEAD_ONE_THREAD_WORK or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class NonFiniteLoss(Exception):
    def __init__(self, epoch: int, batch: int, batches: int, value: float) -> None:
        super().__init__(f"train loss is {value} at epoch {epoch}, batch {batch} (of {batches}; both 0-based)")


class KeypointModel(nn.Module):
    """Backbone features -> head. A fully frozen backbone runs without autograd (it needs no grads)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        needs_grad = any(p.requires_grad for p in self.backbone.parameters())
        with torch.set_grad_enabled(needs_grad and torch.is_grad_enabled()):
            f = self.backbone(x)
        return self.head(f)


@torch.no_grad()
def evaluate(net: nn.Module, src: BatchSource, size: int, ctx: Context) -> float:
    """Mean squared error over the whole split (eval mode), summed across ranks."""
    net.eval()
    sse = torch.zeros(2, dtype=torch.float64)
    for idx, real in eval_chunks(len(src), size, ctx):
        x, y = src.batch(idx, None)
        err = ((net(x)[:real] - y[:real]) ** 2).sum().double()
        sse += torch.stack([err, torch.tensor(float(y[:real].numel()), dtype=torch.float64)])
    total = ctx.sum(sse)
    return float(total[0] / total[1])


def _progress(err: Console, ctx: Context) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(), console=err,
                    transient=True, disable=not (ctx.main and err.is_terminal))


class Trainer:
    """One run, set up in __init__ (all validation happens there, before any file is written)."""

    def __init__(self, cfg: TrainConfig, ctx: Context, console: Console, err: Console) -> None:
        self.cfg, self.ctx, self.console, self.err = cfg.validate(), ctx, console, err
        if cfg.bs % ctx.world:
            raise fail(f"--bs {cfg.bs} does not split evenly over {ctx.world} processes (--bs is the global batch)")
        self.local_bs = cfg.bs // ctx.world
        self.out = Path(cfg.out)
        self.ckpt = self.out / state.NAME
        if cfg.resume and not self.ckpt.is_file():
            raise fail(f"--resume: no checkpoint {self.ckpt}")
        if not cfg.resume and self.ckpt.exists():
            raise fail(f"{self.out} already holds a run ({state.NAME}); "
                       "pass --resume to continue it or choose another --out")
        self.data = kdata.load(cfg.data, cfg.img_size)
        self.n_batches = len(self.data.train) // cfg.bs  # fastai drops the last partial training batch
        if self.n_batches == 0:
            raise fail(f"--bs {cfg.bs}: larger than the {len(self.data.train)} training images")

        torch.manual_seed(cfg.seed)  # random-init backbones and the head start from the seed
        self.backbone = registry.build(cfg.backbone, cfg.weights)
        if self.backbone.ported:
            if cfg.parity_gate:
                gate.check(self.backbone.ported, cfg.bn)
            else:
                ckpt = self.backbone.ported
                report.warn(err, "PARITY GATE SKIPPED", f"--no-parity-gate: {ckpt} has no certificate check",
                            gate.SKIPPED.format(ckpt=ckpt))
        self.prep = pp.get(cfg.preprocess) if cfg.preprocess else self.backbone.preprocess
        self.policy = bn.BN_POLICIES[cfg.bn]
        features = self.backbone.features
        if ctx.world > 1 and self.policy.batch_stats:
            dist.to_cross_rank(features)  # batch statistics of the global batch, as in one process
        if cfg.bn_momentum is not None:
            bn.set_momentum(features, cfg.bn_momentum)
        bn.set_trainable(features, freeze=cfg.freeze, policy=self.policy)
        kind = heads.HEADS[cfg.head]
        self.body = heads.feature_map(features) if kind.needs_map else features  # what the head is fed
        self.head = heads.build(cfg.head, self.backbone.dim, hidden=cfg.hidden, dropout=cfg.dropout)
        self.model = KeypointModel(self.body, self.head)
        self.frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        self.plan = {**cfg.plan(), "backbone_source": self.backbone.source,
                     "labels_sha256": sha256_file(Path(cfg.data) / kdata.LABELS)}
        self.saved = state.load(self.ckpt) if cfg.resume else None
        if self.saved is not None:
            state.check_plan(self.ckpt, self.saved["plan"], self.plan)
        self.total_steps = cfg.epochs * self.n_batches
        if PCT_START * self.total_steps <= 1:  # OneCycleLR divides by its warm-up length minus one step
            raise fail(f"--epochs {cfg.epochs} x {self.n_batches} batches = {self.total_steps} steps: one-cycle needs "
                       f"at least {int(1 / PCT_START) + 1} (more epochs or a smaller --bs)")
        self.forecasts = bn.forecast(features, self.total_steps) if self.policy.batch_stats else []

    # ------------------------------------------------------------------ set-up that computes
    def _sources(self) -> tuple[nn.Module, BatchSource, BatchSource]:
        train = ImageSource(self.data.train, self.prep)
        valid = ImageSource(self.data.valid, self.prep)
        if not self.cached:
            return self.model, train, valid
        body, size = self.body, self.local_bs
        return (self.head, FeatureSource(compute_features(body, train, size, self.ctx), self.data.train.targets),
                FeatureSource(compute_features(body, valid, size, self.ctx), self.data.valid.targets))

    @property
    def cached(self) -> bool:
        return cacheable(self.cfg)

    @property
    def monitored(self) -> bool:
        """BN layers normalise with batch statistics in training and running ones at validation."""
        return self.policy.batch_stats and not self.cached

    def _restore(self, opt: torch.optim.Optimizer, sched: OneCycleLR) -> tuple[int, list[EpochResult]]:
        if self.saved is None:
            return 0, []
        result = self.model.load_state_dict(self.saved["model"], strict=False)
        if result.unexpected_keys or set(result.missing_keys) != self.frozen:
            raise fail(f"--resume: {self.ckpt} does not fit this model ({len(result.unexpected_keys)} unexpected, "
                       f"{len(set(result.missing_keys) - self.frozen)} missing tensors)")
        opt.load_state_dict(self.saved["optimizer"])
        sched.load_state_dict(self.saved["scheduler"])
        history = [EpochResult(**{**e, "batch_losses": tuple(e["batch_losses"])}) for e in self.saved["history"]]
        return int(self.saved["epoch"]), history

    def _save(self, epoch: int, opt: torch.optim.Optimizer, sched: OneCycleLR, history: list[EpochResult]) -> None:
        model = {k: v for k, v in self.model.state_dict().items() if k not in self.frozen}
        state.save(self.ckpt, {"epoch": epoch, "model": model, "optimizer": opt.state_dict(),
                               "scheduler": sched.state_dict(), "history": [asdict(e) for e in history],
                               "plan": self.plan})
        report.write_csv(self.out / "log.csv", history)

    def _intro(self) -> str:
        cfg = self.cfg
        how = "features cached" if self.cached else "backbone runs every batch"
        trains = "frozen backbone" if cfg.freeze == "backbone" else "full fine-tune"
        return (f"{cfg.backbone}: {cfg.head} head on {trains}, "
                f"BN {cfg.bn}; {self.data.describe()}; bs {cfg.bs} x {self.n_batches} batches/epoch, "
                f"max_lr {cfg.max_lr:g}, {cfg.epochs} epochs; inputs {self.prep.name}; {how}"
                + (f"; {self.ctx.world} processes" if self.ctx.world > 1 else ""))

    # ------------------------------------------------------------------ the run
    def run(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        for f in self.forecasts:
            if not f.follows:
                report.warn(self.err, "BN running statistics cannot follow", f.describe(), bn_warning(f))
        net, train_src, valid_src = self._sources()
        params = [p for p in net.parameters() if p.requires_grad]
        # fused: one kernel for every parameter; on the CPU a head step's optimizer cost falls from ~6 ms
        # (per-tensor loop) to ~1 ms, which is most of a cached epoch (scripts/bench: trainer)
        opt = torch.optim.AdamW(params, lr=cfg.max_lr, weight_decay=cfg.weight_decay, fused=True)
        sched = OneCycleLR(opt, max_lr=cfg.max_lr, total_steps=self.total_steps, pct_start=PCT_START,
                           div_factor=DIV_FACTOR, final_div_factor=FINAL_DIV_FACTOR)
        start, history = self._restore(opt, sched)
        if ctx.main:
            self.out.mkdir(parents=True, exist_ok=True)
        stepper = net
        if ctx.world > 1:
            stepper = DistributedDataParallel(net)
        sampler = DistributedSampler(train_src, num_replicas=ctx.world, rank=ctx.rank, shuffle=True, seed=cfg.seed)
        self.console.print(self._intro(), highlight=False, soft_wrap=True)
        self.console.print(report.header(self.monitored), highlight=False)
        for e in history:
            self.console.print(report.row(e, self.monitored), highlight=False)
        monitor = BNMonitor(self.backbone.features) if self.monitored else None
        warned = any((d := _drift(e)) is not None and d.alarming for e in history)
        stop = cfg.epochs if cfg.stop_after is None else min(cfg.epochs, start + cfg.stop_after)
        status, reason = "done", ""
        # cached: the head trains alone (net is the head), on one thread where its batches are small
        threads = head_threads(self.head, self.local_bs) if self.cached else nullcontext()
        try:
            with threads:
                for epoch in range(start, stop):
                    e = self._epoch(epoch, net, stepper, opt, sched, sampler, train_src, valid_src, monitor)
                    history.append(e)
                    self.console.print(report.row(e, self.monitored), highlight=False)
                    d = _drift(e)
                    if not warned and d is not None and d.alarming:
                        warned = True
                        report.warn(self.err, "BN statistics drift", f"epoch {e.epoch}: {d.describe()}",
                                    drift_warning(d))
                    if ctx.main:
                        self._save(epoch + 1, opt, sched, history)
        except NonFiniteLoss as exc:
            status, reason = "stopped", str(exc)
        finally:
            if monitor is not None:
                monitor.close()
        result = TrainResult(cfg, tuple(history), status, reason, self.cached, ctx.world,
                             tuple(self.forecasts), self.backbone.source)
        if status == "done" and result.bad_valid_epochs:
            result = replace(result, status="failed",
                             reason=f"valid loss not finite at epochs {result.bad_valid_epochs}")
        elif status == "done" and stop < cfg.epochs:
            result = replace(result, status="paused",
                             reason=f"paused after epoch {stop - 1} as asked (--stop-after); continue with --resume")
        if ctx.main:
            title = f"{cfg.backbone}  bs {cfg.bs}  max_lr {cfg.max_lr:g}  BN {cfg.bn}"
            report.plot(self.out / "loss.png", history, title)
            write_text(self.out / "result.json", result.to_json())
        return result

    def _epoch(self, epoch: int, net: nn.Module, stepper: nn.Module, opt: torch.optim.Optimizer, sched: OneCycleLR,
               sampler: DistributedSampler, train_src: BatchSource, valid_src: BatchSource,
               monitor: BNMonitor | None = None) -> EpochResult:
        cfg, ctx = self.cfg, self.ctx
        t0 = time.perf_counter()
        torch.manual_seed(state.epoch_seed(cfg.seed, epoch, ctx.rank))  # dropout: same draws on resume
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        aug = None
        if cfg.augment:
            g = torch.Generator().manual_seed(state.epoch_seed(cfg.seed, epoch))
            aug = augment.sample(augment.AugmentSpec(), self.data.train.targets, g)
        local = self.local_bs
        net.train()
        if not self.cached:  # cached: the backbone is not run at all
            bn.apply_mode(self.backbone.features, self.policy)
        losses: list[float] = []
        if monitor is not None:
            monitor.reset()
        with _progress(self.err, ctx) as bar:
            task = bar.add_task(f"epoch {epoch}", total=self.n_batches, loss="-")
            for b in range(self.n_batches):
                x, y = train_src.batch(order[b * local:(b + 1) * local], aug)
                loss = F.mse_loss(stepper(x), y)
                total = ctx.sum(torch.stack([loss.detach() * y.numel(), torch.tensor(float(y.numel()))]))
                value = float(total[0] / total[1])
                if not math.isfinite(value):
                    raise NonFiniteLoss(epoch, b, self.n_batches, value)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(value)
                bar.update(task, advance=1, loss=f"{value:.4f}")
        d = monitor.drift() if monitor is not None else None  # before validation: its passes are eval mode
        valid = evaluate(net, valid_src, self.local_bs, ctx)
        return EpochResult(epoch, sum(losses) / len(losses), valid, time.perf_counter() - t0,
                           sched.get_last_lr()[0], tuple(losses), *((d.shift, d.scale, d.layer) if d else ()))


def _drift(e: EpochResult) -> BNDrift | None:
    return BNDrift(e.bn_shift, e.bn_scale or 0.0, e.bn_layer) if e.bn_shift is not None else None


def drift_warning(d: BNDrift) -> str:
    return (f"{d.describe()}.\n\nUnder --bn train the head learns on features normalised with each batch's "
            f"own statistics, but validation normalises with the running statistics, which have not followed "
            f"the training data (momentum too small: MMdnn emits 0, TF's decay 0.999 is 0.001). Expect the "
            f"validation loss to part from the training loss. Use --bn eval, or --bn-momentum 0.1.")


def bn_warning(f: bn.Forecast) -> str:
    return (f"{f.describe()}.\n\nWith --bn train the head trains on batch statistics but is validated on the "
            f"running statistics, which stay close to the source's: validation sees features the head never "
            f"trained on, and its loss can explode while the training loss falls. Use --bn eval (what Keras "
            f"does with a frozen BatchNormalization) or a momentum that follows, e.g. --bn-momentum 0.1.")


def train(cfg: TrainConfig, *, ctx: Context | None = None, console: Console | None = None,
          err: Console | None = None) -> TrainResult:
    """Library entry point; the CLI adds process-group set-up and the final line."""
    ctx = ctx or Context()
    console = console or Console(quiet=not ctx.main, highlight=False)
    err = err or Console(stderr=True, quiet=not ctx.main, highlight=False)
    return Trainer(cfg, ctx, console, err).run()
