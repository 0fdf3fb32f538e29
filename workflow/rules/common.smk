# Shared settings for every rule file: validated config, results layout, shard list, the package importable.
import sys
from functools import partial
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

PACKAGE_DIR = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, PACKAGE_DIR)

from animefaces.config import section_json  # noqa: E402
from animefaces.runlock import end_run, job_check_command, start_run  # noqa: E402
from animefaces.shards import batch_pattern, shard_names  # noqa: E402
from animefaces.wiring import (  # noqa: E402
    check_config,
    config_source,
    input_folder,
    normalise_env,
    output_folder,
    pack_card_config,
    pack_formats,
    pack_is_directory,
    pack_output,
    pack_params,
    pack_targets,
    per_batch,
    rank_network,
    results_of,
    runtime_params,
    runtime_value,
    train_data,
    train_launch,
    train_params,
    train_resources,
    upscale_inputs,
    upscale_model_flag,
    upscale_model_path,
    upscale_train_params,
)

# Validate once, before the DAG: schema (defaults filled), cross-key checks (animefaces.configcheck) and the
# dataset.root pre-flight; every problem on one line naming the key, then exit 2 (no traceback), not in a job.
check_config(config, config_source(workflow.overwrite_configfiles))

RES = f"results/{config['dataset']['name']}"

# Jobs run `python -m animefaces.<stage>` in whatever environment they get (venv, conda env, SLURM node):
# the package is importable there without being installed. Every job first checks that its run still holds
# the run lock of RES (animefaces.runlock), so a second run can never rerun a live run's jobs.
shell.prefix(
    f"export PYTHONPATH='{PACKAGE_DIR}'${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
    + job_check_command(RES)
)


# One live run per results folder (Snakemake's lock is per checkout and `--unlock` removes it even during a
# run): taken when a run starts executing jobs, released when it ends; a dead holder's lock is taken over.
onstart:
    start_run(RES)


onsuccess:
    end_run(RES)


onerror:
    end_run(RES)


SHARDS = shard_names(config["shards"]["count"])
# Per-shard stages run shards.per_job shards per job (wildcard `batch`; see animefaces.shards).
PER_JOB = config["shards"]["per_job"]
BATCH_RE = batch_pattern(PER_JOB)

# shard_files(pattern with {shard}): the files of one job of a per-shard stage (wildcard {batch})
shard_files = partial(per_batch, per_job=PER_JOB)


# Each rule file appends the outputs that `rule all` should build.
TARGETS = []
