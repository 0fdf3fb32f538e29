"""What the rule files compute from the config, as named, tested functions (rule files only wire paths).

Everything here is evaluated once when Snakemake builds the DAG: the config checks that must fail before any job
runs, the pack paths and per-format params, which pack the trainer reads, the train job's GPU request and launcher,
and the manifests the report reads.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import runtime_json, section_json
from .pack.formats import PACK_FORMATS, training_format


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def check_config(config: dict, source: str = "") -> dict:
    """Validate ``config`` in place before the DAG is built: the schema (defaults filled), every cross-key check
    of ``animefaces.configcheck.CHECKS`` (the demo's dataset keys, the filter section, the class table options,
    packs vs. training, ...), then a pre-flight sample of ``dataset.root``. Every problem on one line naming the
    key, then exit 2 (no traceback, no schema dump); ``source`` names the config files in the message."""
    import sys

    from .configcheck import validate_or_exit
    from .ingest.preflight import PreflightError, preflight

    validate_or_exit(config, source)
    try:  # a dataset.root where none of 200 sampled posts has its image: stop now, naming the key
        preflight(config["dataset"], demo_enabled=config["demo"]["enabled"])
    except PreflightError as exc:
        print(f"animefaces: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return config


def config_source(configfiles: list) -> str:
    """How the messages name the config: the ``--configfile`` files, or the embedded demo."""
    return ", ".join(map(str, configfiles)) or "config/demo.yaml"


# Keys of ``animefaces.config.RUNTIME_KEYS`` (paths, devices, threads, job resources) go to a job as ``--runtime``
# through these: Snakemake does not record params computed by a function in its rerun trigger.
def runtime_params(config: dict, name: str) -> Callable[..., str]:
    """A rule ``params`` entry for the runtime keys. Snakemake does not record params computed by a function
    of ``threads`` in its rerun trigger, so changing a path, device or thread count never reruns the stage."""
    text = runtime_json(config, name)

    def runtime(wildcards, threads) -> str:
        return text

    return runtime


def runtime_value(value: Any) -> Callable[..., Any]:
    """A rule ``params`` entry for one runtime value (e.g. a path) that must not trigger reruns."""

    def runtime(wildcards, threads) -> Any:
        return value

    return runtime


def metadata_files(config: dict) -> list[str]:
    """The ingest rule's metadata inputs: ``dataset.metadata`` with globs and directories expanded."""
    from .ingest.readers import expand_metadata

    if config["dataset"]["source"] != "danbooru":
        return []
    return expand_metadata(config["dataset"]["metadata"])


def output_folder(name: str) -> Callable[..., str]:
    """A rule ``params`` function: the folder holding the rule's output ``name``. (Snakemake does not record the
    value of function params, so a folder derived from outputs never reruns a job by itself.)"""

    def folder(wildcards: Any, output: Any) -> str:
        return str(Path(getattr(output, name)).parent)

    return folder


def input_folder(name: str) -> Callable[..., str]:
    """A rule ``params`` function: the folder holding the rule's input ``name``."""

    def folder(wildcards: Any, input: Any) -> str:
        return str(Path(getattr(input, name)).parent)

    return folder


def results_of(name: str) -> Callable[..., str]:
    """A rule ``params`` function: the results folder RES of the run, from the stage manifest
    ``RES/<stage>/manifests/<shard>.parquet`` that is the first file of the rule's input ``name`` (for the commands
    that take ``--results RES --shards N``; derived from a file, as Snakemake's linter asks of path params)."""

    def results(wildcards: Any, input: Any) -> str:
        files = getattr(input, name)
        return str(Path(files if isinstance(files, str) else files[0]).parents[2])

    return results


def per_batch(pattern: str, per_job: int) -> list[str]:
    """A per-shard file pattern (holding ``{shard}``) as the files of one job of a per-shard stage (wildcard
    ``{batch}``; ``shards.per_job`` shards per job): ``{batch}`` followed by each shard's last digits, so every
    file keeps its shard's own name (``per_job`` 1: the pattern with ``{batch}`` for ``{shard}``)."""
    from .shards import batch_suffixes

    if "{shard}" not in pattern:
        raise ValueError(f"per_batch: {pattern!r} has no {{shard}}")
    return [pattern.replace("{shard}", "{batch}" + suffix) for suffix in batch_suffixes(per_job)]


def rank_network(config: dict) -> list[str]:
    """The frozen discriminator the rank rule reads: ``[rank.network]``, or ``[]`` when unset (no ranking)."""
    network = config["rank"]["network"]
    return [network] if network else []


# ------------------------------------------------------------------------------------------------- upscale
TORCH_UPSCALERS = ("torch_bicubic", "learned", "weights")


def upscale_model_path(res: str) -> str:
    """Where the upscale_train rule writes the learned upscaler of a results folder."""
    return f"{res}/upscale/model.pt"


def upscale_inputs(config: dict, res: str) -> list[str]:
    """The normalise rule's model input: the learned upscaler (so normalise depends on the upscale_train rule only
    when ``normalise.upscale.backend`` is ``learned``), the user's weights file for ``weights``, else nothing."""
    up = config["normalise"]["upscale"]
    if up["backend"] == "learned":
        return [upscale_model_path(res)]
    if up["backend"] == "weights":
        return [up["weights"]] if up["weights"] else []
    return []


def upscale_model_flag(config: dict, res: str) -> str:
    """normalise's ``--upscale-model`` for backend learned ('' otherwise: weights come from upscale.weights)."""
    if config["normalise"]["upscale"]["backend"] != "learned":
        return ""
    return f"--upscale-model {shlex.quote(upscale_model_path(res))}"


def upscale_train_params(config: dict) -> str:
    """upscale_train's ``--params``: only what changes the trained model (the learned block, the size that
    min_side 0 stands for, the background transparent pixels are flattened onto), so other normalise keys never
    retrain it."""
    norm = config["normalise"]
    return _canonical(
        {"size": norm["size"], "background": norm["background"], "upscale": {"learned": norm["upscale"]["learned"]}}
    )


def normalise_env(config: dict) -> str:
    """The normalise rule's conda env: ``upscale`` (torch, spandrel) for a torch backend, else ``vision``."""
    torch_backend = config["normalise"]["upscale"]["backend"] in TORCH_UPSCALERS
    return "../../envs/upscale.yaml" if torch_backend else "../../envs/vision.yaml"


# ------------------------------------------------------------------------------------------------- pack


def pack_formats() -> list[str]:
    """Every registered pack format (one pack rule each)."""
    return list(PACK_FORMATS)


def pack_output(res: str, dataset_name: str, fmt: str) -> str:
    """Where the ``fmt`` pack goes: ``RES/pack/<format>/<dataset name><suffix>``."""
    return PACK_FORMATS[fmt].path(res, dataset_name)


def pack_is_directory(fmt: str) -> bool:
    return PACK_FORMATS[fmt].output == "directory"


def pack_params(config: dict, fmt: str) -> str:
    """Only ``fmt``'s own options as JSON (``--params``), so changing one format's settings reruns only its pack."""
    return _canonical({fmt: config["pack"][fmt]})


def pack_card_config(config: dict) -> str:
    """The config sections recorded in each dataset card (what produced the pack), next to the format's options.
    Without their runtime keys (``normalise.upscale.device``, ``select.exclude_file``): this is a rule param, so a
    device or a path there would rerun every pack, and training after it, on a finished run."""
    return _canonical({k: json.loads(section_json(config, k)) for k in ("dataset", "normalise", "select")})


def pack_targets(config: dict, res: str) -> list[str]:
    """The packs and cards that ``pack.formats`` asks for."""
    name = config["dataset"]["name"]
    out = []
    for fmt in config["pack"]["formats"]:
        out += [pack_output(res, name, fmt), f"{res}/pack/cards/{fmt}.json"]
    return out


# ------------------------------------------------------------------------------------------------- train


def train_data(config: dict, res: str) -> str:
    """The pack the trainer reads: the first trainable format listed in ``pack.formats`` (registry order: the HDF5
    pack before the zip), else the HDF5 pack (built for training even when not listed)."""
    fmt = training_format(config["pack"]["formats"])
    return fmt.path(res, config["dataset"]["name"])


def train_gpus(config: dict) -> int:
    """GPUs the train job requests: 0 for device cpu, at least 1 for cuda, ``train.gpus`` for auto."""
    train = config["train"]
    return {"cpu": 0, "cuda": max(1, train["gpus"]), "auto": train["gpus"]}[train["device"]]


def train_resources(config: dict) -> dict[str, Any]:
    """The train job's resources: ``gpu`` only when it needs any (the SLURM profile maps it to --gpus); for
    ``train.nodes > 1`` the multi-node request of :func:`animefaces.train.launch.job_resources` instead."""
    from .train.launch import job_resources

    res = {"mem_mb": config["train"]["mem_mb"], "runtime": config["train"]["runtime"]}
    return {**job_resources(config["train"]["nodes"], train_gpus(config)), **res}


def train_params(config: dict) -> str:
    """The train section minus its runtime keys (``config.RUNTIME_KEYS``: device, GPUs, threads, job resources,
    tensorboard): changing them must not rerun training; they go as ``--runtime`` (``runtime_params``)."""
    return section_json(config, "train")


def train_launch(config: dict) -> str:
    """``python -m animefaces.train``, torchrun DDP on one node (one process per GPU) for more than one GPU, or
    srun + one torchrun per node for ``train.nodes > 1`` (:func:`animefaces.train.launch.launch_command`)."""
    from .train.launch import launch_command

    return launch_command(config["train"]["nodes"], train_gpus(config), config["train"]["threads"] or 4)
