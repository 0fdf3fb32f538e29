"""The training loop: phases, EMA, ADA, ticks, snapshots, exact resume, DDP.

One iteration (``step``) = G main step (+ lazy path-length step every ``g_reg_interval``), D main step (+ lazy R1
step every ``d_reg_interval``), EMA update of G_ema, ADA adjustment every ``ada_interval`` steps. A tick is
``kimg_per_tick`` thousand images: at its end the metrics line and a fake-image grid (fixed latents, G_ema,
constant noise) are written; every ``snap`` ticks (and at the end) a snapshot. A restarted run resumes from the
newest valid snapshot and continues bit-for-bit as if never interrupted (given the same device, thread count and
``deterministic: true`` for GPU runs).

Multi-GPU: launched with ``torchrun`` (``WORLD_SIZE > 1``), each rank trains on ``batch / world`` images and the
gradients are averaged with one flat all-reduce per phase (explicit, because R1 needs double backward).
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..atomic import write_json
from ..device import resolve_device
from ..metrics.training import TrainingMetrics
from ..progress import eta_seconds, format_progress, format_seconds
from . import checkpoint as ckpt
from . import monitor, presets
from .augment import AdaController, AugmentPipe
from .data import BatchSampler, ImageData, open_dataset, probe, to_float
from .loader import BatchLoader
from .models import get_model

EXIT_INTERRUPTED = 3  # returned when an injected stop (tests) ends the run early


@dataclass
class Counters:
    nimg: int = 0
    step: int = 0
    tick: int = 0
    tick_start_nimg: int = 0
    train_time: float = 0.0  # seconds of training across all (resumed) runs


class Logger:
    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self, msg: str) -> None:
        if self.rank == 0:
            print(msg, flush=True)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    def __init__(
        self,
        params: dict[str, Any],
        data_path: str,
        outdir: str,
        threads: int | None = None,
        log: Logger | None = None,
    ) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.log = log or Logger(self.rank)
        self.outdir = Path(outdir)
        self.snapdir = self.outdir / "snapshots"
        self.griddir = self.outdir / "grids"
        self.params = dict(params)
        if params.get("deterministic"):
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        nthreads = params.get("threads") or threads
        if nthreads:
            torch.set_num_threads(int(nthreads))
        self.device = resolve_device(params["device"], params["gpus"], self.local_rank)
        if params["device"] == "auto" and params["gpus"] > 0 and self.device.type == "cpu":
            self.log(f"train.gpus={params['gpus']} but no CUDA device is visible: training on CPU (slow)")
        if self.world > 1:
            import torch.distributed as dist

            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
        count, src_res, classes = probe(data_path)
        self.cfg = presets.resolve(params, src_res, classes, self.device.type)
        cfg = self.cfg
        if cfg["cond"] and classes < 2:
            raise ValueError(
                f"train.cond is true (train.model {cfg['model']} is conditional unless train.cond: false) but "
                f"{data_path} has no class labels (or only one class)"
            )
        if cfg["batch"] % self.world:
            raise ValueError(f"train.batch {cfg['batch']} is not divisible by the {self.world} GPUs")
        self.batch_gpu = cfg["batch"] // self.world
        self._setup_backends()
        _seed_all(cfg["seed"] * self.world + self.rank)

        self.data: ImageData = open_dataset(data_path, cfg["resolution"], cfg["data_memory_gb"])
        self.log(
            f"data: {data_path}: {len(self.data)} images at {self.data.source_resolution} px"
            f" -> training at {cfg['resolution']} px{'' if self.data.in_memory else ' (read from disk per batch)'}"
            f", {self.data.num_classes} classes, conditional: {bool(cfg['c_dim'])}"
        )
        self.sampler = BatchSampler(len(self.data), cfg["seed"], self.rank, self.world, cfg["mirror"])
        self.batches = BatchLoader(self.data, self.sampler, self.batch_gpu, self.device, cfg.get("loader_workers"))
        self.log(self.batches.describe())

        # the model's part (train.model): networks, optimisers, iteration, extra state; see models.Recipe
        self.recipe = get_model(cfg["model"]).make_recipe(self)
        self.G, self.D = self.recipe.build_networks()
        self.G.to(self.device).train()
        self.D.to(self.device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        mode = cfg["augment"]
        self.aug = AugmentPipe(
            cfg["ada_pipe"],
            cfg["diffaugment"] if "diffaugment" in mode else "",
            use_ada="ada" in mode,
            p=cfg["aug_p"],
        ).to(self.device)
        self.ada = (
            AdaController(self.aug, cfg["ada_target"], cfg["ada_kimg"], cfg["ada_interval"], cfg["batch"])
            if "ada" in mode and cfg["ada_target"] is not None
            else None
        )
        if cfg["channels_last"]:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.opt_G, self.opt_D = self.recipe.make_optimizers()
        fp16 = cfg["precision"] == "fp16"
        self.scaler_G = torch.amp.GradScaler("cuda") if fp16 else None
        self.scaler_D = torch.amp.GradScaler("cuda") if fp16 else None
        self.counters = Counters()
        self.history: list[dict[str, Any]] = []
        self.total_nimg = int(round(cfg["kimg"] * 1000))
        self.tick_nimg = max(1, int(round(cfg["kimg_per_tick"] * 1000)))
        self.resumed_from: str | None = None
        self._grid_cache: tuple[int, Tensor] | None = None

        # fixed grid latents and labels: their own generator, never the training RNG
        gen = torch.Generator().manual_seed(cfg["seed"] + 1_000_003)
        n_grid = cfg["grid_rows"] * cfg["grid_cols"]
        self.grid_z = torch.randn(n_grid, cfg["z_dim"], generator=gen).to(self.device)
        self.grid_idx = torch.randint(len(self.data), (n_grid,), generator=gen)
        self.grid_c = self.data.labels_for(self.grid_idx, cfg["c_dim"]).to(self.device)
        self.recipe.setup()  # losses, compiled forwards, model-specific grid labels
        self.quality = TrainingMetrics.from_config(cfg, self.data, self.device, self.rank, self.log)

    # ---------------------------------------------------------------------------------------------- setup
    def _setup_backends(self) -> None:
        cfg = self.cfg
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True, warn_only=self.device.type == "cuda")
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(cfg["tf32"])
            torch.backends.cudnn.allow_tf32 = bool(cfg["tf32"])

    def _autocast(self) -> contextlib.AbstractContextManager:
        prec = self.cfg["precision"]
        if self.device.type != "cuda" or prec == "fp32":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if prec == "bf16" else torch.float16)

    # ---------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        rng = ckpt.capture_rng()
        # per-process state: RNGs, the data sampler, and the statistics each rank accumulates locally (ADA's
        # counters, the recipe's running means). Stored once, here: a run with another number of processes
        # resumes them from rank 0's entry.
        rng["sampler"] = self.sampler.state_dict()
        rng["ada"] = self.ada.state_dict() if self.ada else None
        rng.update(self.recipe.rank_state())
        rngs = [rng]
        if self.world > 1:
            import torch.distributed as dist

            rngs = [None] * self.world
            dist.all_gather_object(rngs, rng)
        return {
            "format": ckpt.SNAPSHOT_FORMAT,
            "G": _cpu_state(self.G),
            "D": _cpu_state(self.D),
            "G_ema": _cpu_state(self.G_ema),
            "G_kwargs": dict(self.G.init_kwargs),
            "D_kwargs": dict(self.D.init_kwargs),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "scaler_G": self.scaler_G.state_dict() if self.scaler_G else None,
            "scaler_D": self.scaler_D.state_dict() if self.scaler_D else None,
            "augment": {"p": float(self.aug.p)},
            **self.recipe.state(),
            "counters": asdict(self.counters),
            "rng": rngs,
            "world": self.world,
            "config": self.cfg,
            "dataset": {"path": self.data.path, "count": len(self.data), "resolution": self.data.source_resolution},
            "metrics": self.history,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_G.load_state_dict(state["opt_G"])
        self.opt_D.load_state_dict(state["opt_D"])
        self.recipe.apply_config_to_optimizers()
        if self.scaler_G and state.get("scaler_G"):
            self.scaler_G.load_state_dict(state["scaler_G"])
            self.scaler_D.load_state_dict(state["scaler_D"])
        self.aug.p.fill_(float(state["augment"]["p"]))
        self.recipe.load_state(state)
        self.counters = Counters(**state["counters"])
        self.history = list(state.get("metrics", []))
        rngs = state["rng"]
        same_world = len(rngs) == self.world
        # this rank's own statistics, or rank 0's when the number of processes changed; snapshots written before
        # they were stored once kept a second copy at the top level, read when the per-rank one is missing
        rng = rngs[self.rank] if same_world else rngs[0]
        ada = rng.get("ada") or state["augment"].get("ada")
        if self.ada and ada:
            self.ada.load_state_dict(ada)
        self.recipe.load_rank_state(rng)
        if same_world:
            ckpt.restore_rng(rng)
            self.sampler.load_state_dict(rng["sampler"])
            self.batches.restart()
        else:
            self.log(f"snapshot was written by {len(rngs)} process(es), this run has {self.world}: RNGs reseeded")
            _seed_all(self.cfg["seed"] * self.world + self.rank + self.counters.step)

    def try_resume(self) -> bool:
        found = ckpt.find_resumable(self.snapdir, self.log)
        if found is None:
            return False
        path, state = found
        bad = presets.incompatible(state["config"], self.cfg)
        if bad:
            raise ValueError(
                f"cannot resume from {path}: these train settings changed since it was written: {'; '.join(bad)}. "
                f"Restore them, or start afresh by moving {self.snapdir} away (or set train.resume: false)."
            )
        changed = sorted(k for k in self.cfg if k in state["config"] and state["config"][k] != self.cfg[k])
        if changed:
            self.log(f"resume: settings changed since the snapshot (allowed): {changed}")
        self.load_state_dict(state)
        self.resumed_from = str(path)
        c = self.counters
        self.log(f"resumed from {path} at kimg {c.nimg / 1000:.3f}, tick {c.tick}, step {c.step}")
        return True

    # ---------------------------------------------------------------------------------------------- steps
    def _next_batch(self) -> tuple[Tensor, Tensor]:
        imgs, flips, idx = self.batches.next()  # uint8 on the device; converted and flipped there
        real = to_float(imgs, flips)
        if self.cfg["channels_last"]:
            real = real.contiguous(memory_format=torch.channels_last)
        c = self.data.labels_for(idx, self.cfg["c_dim"]).to(self.device)
        return real, c

    def _gen_inputs(self) -> tuple[Tensor, Tensor]:
        z = torch.randn(self.batch_gpu, self.cfg["z_dim"], device=self.device)
        if self.cfg["c_dim"]:
            idx = torch.randint(len(self.data), (self.batch_gpu,))
            c = self.data.labels_for(idx, self.cfg["c_dim"]).to(self.device)
        else:
            c = torch.zeros(self.batch_gpu, 0, device=self.device)
        return z, c

    def _finish_grads(self, module: nn.Module, sanitize: bool) -> None:
        """Average the gradients over ranks (one flat all-reduce) and, unless a GradScaler must see the overflow,
        replace NaN/inf by 0/±1e5 as the reference does in every phase: one non-finite value from a bf16/fp16 step
        must not poison the weights (the Adam state would carry it forever)."""
        params = [p for p in module.parameters() if p.requires_grad and p.grad is not None]
        if self.world == 1:
            if sanitize:
                for p in params:
                    torch.nan_to_num_(p.grad, nan=0, posinf=1e5, neginf=-1e5)
            return
        import torch.distributed as dist

        params = [p for p in module.parameters() if p.requires_grad]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
        dist.all_reduce(flat)
        flat /= self.world
        if sanitize:
            torch.nan_to_num_(flat, nan=0, posinf=1e5, neginf=-1e5)
        offset = 0
        for p in params:
            n = p.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def _step(self, loss: Tensor, opt: torch.optim.Optimizer, module: nn.Module, scaler) -> None:
        if scaler is None:
            loss.backward()
            self._finish_grads(module, sanitize=True)
            opt.step()
        else:
            # fp16: the GradScaler skips the step when it finds inf/NaN, so the values are left for it to see
            scaler.scale(loss).backward()
            self._finish_grads(module, sanitize=False)
            scaler.step(opt)
            scaler.update()

    def train_step(self, stats: dict[str, list[Tensor]]) -> None:
        cfg, c = self.cfg, self.counters
        n_real = self.recipe.train_step(stats)  # the model's phases; returns the real images shown to D

        # EMA of G (half-life ema_kimg, ramped up early in training; a plain copy before ema_start_kimg);
        # buffers (w_avg, const noise, BatchNorm statistics) copied
        ema_nimg = cfg["ema_kimg"] * 1000
        if cfg["ema_rampup"] is not None:
            ema_nimg = min(ema_nimg, c.nimg * cfg["ema_rampup"])
        beta = 0.5 ** (n_real / max(ema_nimg, 1e-8))
        if c.nimg < (cfg.get("ema_start_kimg") or 0) * 1000:
            beta = 0.0
        with torch.no_grad():
            for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
                p_ema.copy_(p.detach().lerp(p_ema, beta))
            for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
                b_ema.copy_(b)

        c.step += 1
        c.nimg += n_real
        if self.ada is not None:
            self.ada.maybe_adjust(c.step, self._reduce_pair if self.world > 1 else None)

    def _reduce_pair(self, a: float, b: float) -> tuple[float, float]:
        import torch.distributed as dist

        t = torch.tensor([a, b], device=self.device, dtype=torch.float64)
        dist.all_reduce(t)
        return float(t[0]), float(t[1])

    # ---------------------------------------------------------------------------------------------- outputs
    @torch.no_grad()
    def grid_images(self) -> Tensor:
        """G_ema on the fixed grid latents (cached per image count: the tick metrics and the grid share it)."""
        if self._grid_cache is not None and self._grid_cache[0] == self.counters.nimg:
            return self._grid_cache[1]
        self.recipe.prepare_for_sampling(self.G_ema)
        out = []
        for i in range(0, len(self.grid_z), 16):
            out.append(self.recipe.render(self.G_ema, self.grid_z[i : i + 16], self.grid_c[i : i + 16]).float().cpu())
        self._grid_cache = (self.counters.nimg, torch.cat(out))
        return self._grid_cache[1]

    def save_grid(self, tick: int) -> None:
        if self.rank == 0:
            monitor.save_grid(
                self.griddir / f"tick-{tick:06d}.png", self.grid_images(), self.cfg["grid_rows"], self.cfg["grid_cols"]
            )

    def save_reals(self) -> None:
        if self.rank == 0:
            path = self.griddir / "reals.png"
            if not path.exists():
                imgs = to_float(self.data.get(self.grid_idx), torch.zeros(len(self.grid_idx), dtype=torch.bool))
                monitor.save_grid(path, imgs, self.cfg["grid_rows"], self.cfg["grid_cols"])

    def save_snapshot(self) -> None:
        state = self.state_dict()  # every rank takes part (RNG gather)
        if self.rank == 0:
            path = self.snapdir / ckpt.snapshot_name(self.counters.nimg)
            ckpt.save_file(path, state)
            removed = ckpt.prune_snapshots(self.snapdir, self.cfg["keep_snapshots"])
            self.log(f"snapshot {path}" + (f" (removed {len(removed)} old)" if removed else ""))
            monitor.plot_losses(self.outdir / "losses.png", self.history)
        self._barrier()

    def _barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def write_final(self) -> None:
        if self.rank != 0:
            return
        extra = {
            "kimg": self.counters.nimg / 1000,
            "tick": self.counters.tick,
            "dataset": {"path": self.data.path},
            "model": self.cfg["model"],
            "class_counts": self.data.class_counts(),
        }
        self.recipe.prepare_for_sampling(self.G_ema)
        ckpt.save_network(self.outdir / "network-final.pt", self.G_ema, self.cfg, extra)
        monitor.write_metrics(self.outdir / "metrics.jsonl", self.history)
        monitor.plot_losses(self.outdir / "losses.png", self.history)
        grids = sorted(p.name for p in self.griddir.glob("tick-*.png"))
        write_json(
            self.griddir / "index.json",
            {"grids": grids, "rows": self.cfg["grid_rows"], "cols": self.cfg["grid_cols"], "ticks": len(grids)},
        )

    # ---------------------------------------------------------------------------------------------- run
    def run(self, stop_after_steps: int | None = None) -> int:
        cfg, c = self.cfg, self.counters
        resumed = cfg["resume"] and self.try_resume()
        c = self.counters
        if not resumed and cfg["init_from"]:
            ckpt.transfer_from(cfg["init_from"], self.G, self.D, self.G_ema, self.log)
        if not resumed:
            self._sync_params()
        self.log(
            f"train: preset {cfg['preset']}, {cfg['resolution']} px, batch {cfg['batch']} ({self.world} process(es),"
            f" {self.device}), G {_nparams(self.G) / 1e6:.2f}M / D {_nparams(self.D) / 1e6:.2f}M params,"
            f" precision {cfg['precision']}, augment {cfg['augment']}, target {cfg['kimg']} kimg"
        )
        self.log(format_progress("train", round(c.nimg / 1000, 3), self.total_nimg / 1000, "kimg", 0.0, 0.0))
        tb = monitor.TensorBoard(self.outdir, cfg["tensorboard"] and self.rank == 0, self.log)
        self.save_reals()
        if not resumed:
            self.save_grid(0)
        steps_this_run = 0
        run_t0, run_nimg0 = time.perf_counter(), c.nimg  # this run's rate (a resumed run measures its own)
        tick_t0 = time.perf_counter()
        stats: dict[str, list[Tensor]] = {}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        while c.nimg < self.total_nimg:
            self.train_step(stats)
            steps_this_run += 1
            if stop_after_steps is not None and steps_this_run >= stop_after_steps:
                self.log(f"stopping after {steps_this_run} steps as requested (simulated interruption)")
                return EXIT_INTERRUPTED
            done = c.nimg >= self.total_nimg
            if c.nimg < c.tick_start_nimg + self.tick_nimg and not done:
                continue
            # ---- end of tick
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            tick_time = time.perf_counter() - tick_t0
            c.train_time += tick_time
            c.tick += 1
            row = self._tick_row(stats, tick_time)
            row.update(self.quality.at_tick(c.tick, done, self.G_ema))  # opt-in FID/KID/proxy (train.metrics)
            c.tick_start_nimg = c.nimg
            stats = {}
            self.history.append(row)
            elapsed = time.perf_counter() - run_t0
            rate = (c.nimg - run_nimg0) / 1000 / max(elapsed, 1e-9)  # kimg/s
            eta = eta_seconds((self.total_nimg - c.nimg) / 1000, rate)
            self.log(_format_row(row) + f"  eta {'?' if eta is None else format_seconds(eta)}")
            if row.get("warning"):
                self.log(f"WARNING: {row['warning']}")
            self.log(format_progress("train", round(c.nimg / 1000, 3), self.total_nimg / 1000, "kimg", elapsed, rate))
            tb.scalars(row)
            self.save_grid(c.tick)
            if self.rank == 0:
                monitor.write_metrics(self.outdir / "metrics.jsonl", self.history)
            if done or c.tick % cfg["snap"] == 0:
                self.save_snapshot()
            if self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            tick_t0 = time.perf_counter()
        if not self.history or self.history[-1]["kimg"] * 1000 < c.nimg:
            self.save_snapshot()
        self.write_final()
        tb.close()
        self.log(
            f"done: {c.nimg / 1000:.3f} kimg in {c.train_time:.1f} s of training -> {self.outdir}/network-final.pt"
        )
        return 0

    def _sync_params(self) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for module in (self.G, self.D, self.G_ema):
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def _tick_row(self, stats: dict[str, list[Tensor]], tick_time: float) -> dict[str, Any]:
        c = self.counters
        tick_imgs = c.nimg - c.tick_start_nimg
        row: dict[str, Any] = {"tick": c.tick, "kimg": c.nimg / 1000, "step": c.step}
        means = {k: torch.stack(v).float().mean() for k, v in stats.items()}
        if self.world > 1:
            import torch.distributed as dist

            keys = sorted(means)
            t = torch.stack([means[k] for k in keys]) if keys else torch.zeros(0, device=self.device)
            dist.all_reduce(t)
            means = dict(zip(keys, t / self.world, strict=True))
        for k in sorted(means):
            row[k] = float(means[k])
        row.update(self.recipe.tick_metrics({k: row[k] for k in means}))
        row["aug_p"] = float(self.aug.p)
        row["ada_rt"] = self.ada.last_rt if self.ada and math.isfinite(self.ada.last_rt) else None
        row["sec_per_tick"] = tick_time
        row["sec_per_kimg"] = tick_time / max(tick_imgs / 1000, 1e-9)
        row["img_per_s"] = tick_imgs / max(tick_time, 1e-9)
        row["time_s"] = c.train_time
        row["gpu_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else None
        try:
            import psutil

            row["cpu_mem_gb"] = psutil.Process().memory_info().rss / 2**30
        except Exception:  # noqa: BLE001
            row["cpu_mem_gb"] = None
        return row


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _nparams(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _format_row(row: dict[str, Any]) -> str:
    keys = ["tick", "kimg", "loss_G", "loss_D", "r1_penalty", "aug_p", "sec_per_kimg", "img_per_s", "gpu_mem_gb"]
    parts = []
    for k in keys:
        v = row.get(k)
        if v is None:
            continue
        parts.append(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}")
    return "  ".join(parts)


def train(
    params: dict[str, Any],
    data_path: str,
    outdir: str,
    threads: int | None = None,
    stop_after_steps: int | None = None,
) -> int:
    """Train (or resume) into ``outdir``; returns 0 when finished, EXIT_INTERRUPTED after an injected stop."""
    trainer = Trainer(params, data_path, outdir, threads)
    try:
        return trainer.run(stop_after_steps)
    finally:
        trainer.batches.close()
        if trainer.world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()
        sys.stdout.flush()
