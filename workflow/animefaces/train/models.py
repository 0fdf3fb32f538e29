"""The model registry (``train.model``): what differs between GAN families, behind one interface for the loop.

Each entry names its presets, architecture / resume-compatibility keys, and two lazily imported parts:

- a *recipe* class (:class:`Recipe`): builds G and D, the optimisers, runs one training iteration (phases,
  losses, accumulation), and contributes its own snapshot state, tick-metrics and grid rendering;
- a *generator factory*: rebuilds G from the ``G_kwargs`` stored in network files (sampling).

Everything else — data and the batch sampler, EMA, snapshots and exact resume, DDP gradient averaging, AMP,
ticks, grids, metrics — is the loop's (:mod:`.loop`), shared by every model. Adding a model = one entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - torch is not imported here, so the Snakefile can read the registry cheaply
    from torch import Tensor, nn

    from .loop import Trainer


@dataclass(frozen=True)
class ModelSpec:
    name: str
    presets_module: str  # module (in this package) with PRESETS, ARCH_KEYS, RESUME_KEYS, auto_preset, finalize
    recipe: str  # "module:Class" of the Recipe
    generator: str  # "module:function" G_kwargs -> generator
    conditional_by_default: bool  # what train.cond: null means

    def _load(self, ref: str) -> Any:
        module, _, attr = ref.partition(":")
        mod = importlib.import_module(f"{__package__}.{module}")
        return getattr(mod, attr) if attr else mod

    @property
    def preset_table(self) -> Any:
        return self._load(self.presets_module)

    def make_recipe(self, trainer: Trainer) -> Recipe:
        return self._load(self.recipe)(trainer)

    def build_generator(self, kwargs: dict[str, Any]) -> nn.Module:
        return self._load(self.generator)(kwargs)


MODELS: dict[str, ModelSpec] = {
    "stylegan2": ModelSpec(
        "stylegan2", "presets", "recipe_stylegan2:StyleGAN2Recipe", "networks:generator_from_kwargs", False
    ),
    "biggan": ModelSpec("biggan", "presets_biggan", "recipe_biggan:BigGANRecipe", "biggan:generator_from_kwargs", True),
}
DEFAULT_MODEL = "stylegan2"


def get_model(name: str | None) -> ModelSpec:
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise ValueError(f"train.model: unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def model_of(config: dict[str, Any] | None) -> str:
    """The model a resolved/saved config was trained with (files written before ``train.model`` existed:
    StyleGAN2)."""
    return (config or {}).get("model") or DEFAULT_MODEL


def is_conditional(train_cfg: dict[str, Any]) -> bool:
    """Whether a ``train`` config section trains a class-conditional model (``cond: null`` = the model's default);
    the workflow uses it to decide whether the class-sample products are built."""
    cond = train_cfg.get("cond")
    return get_model(train_cfg.get("model")).conditional_by_default if cond is None else bool(cond)


def all_preset_names() -> list[str]:
    return ["auto", *(p for spec in MODELS.values() for p in spec.preset_table.PRESETS)]


class Recipe:
    """The per-model part of training. ``self.t`` is the :class:`~.loop.Trainer` (data, device, config, EMA,
    ``_next_batch``, ``_gen_inputs``, ``_step`` = backward + DDP gradient averaging + optimiser step)."""

    def __init__(self, trainer: Trainer) -> None:
        self.t = trainer

    # setup
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        raise NotImplementedError

    def make_optimizers(self) -> tuple[Any, Any]:
        raise NotImplementedError

    def setup(self) -> None:
        """After networks, optimisers and augmentation exist (losses, compiled forwards)."""

    def apply_config_to_optimizers(self) -> None:
        """After a resume: the current config's learning rates / betas (they may differ from the snapshot's)."""

    # one iteration
    def train_step(self, stats: dict[str, list[Tensor]]) -> int:
        """Run one iteration; returns the number of real images shown to D (over all processes)."""
        raise NotImplementedError

    # state (snapshots)
    def state(self) -> dict[str, Any]:
        """Extra top-level snapshot entries (shared by all ranks)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def rank_state(self) -> dict[str, Any]:
        """Extra per-process entries stored with each rank's RNG states."""
        return {}

    def load_rank_state(self, rng: dict[str, Any]) -> None:
        pass

    # monitoring and sampling
    def render(self, G: nn.Module, z: Tensor, c: Tensor) -> Tensor:
        """Images from a generator for the tick grids (eval mode; deterministic)."""
        raise NotImplementedError

    def prepare_for_sampling(self, G_ema: nn.Module) -> None:
        """Called before tick grids and the final network are produced from G_ema."""

    def tick_metrics(self, stats: dict[str, float]) -> dict[str, Any]:
        """Extra keys for the tick's metrics row (``stats`` = the tick's mean losses/logits; the tick grid is
        ``self.t.grid_images()``, cached). A ``warning`` key (text) is printed as a WARNING line."""
        return {}
