# Shared settings for every rule file: validated config, results layout, shard list, the package importable.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


validate(config, "../schemas/config.schema.yaml")

PACKAGE_DIR = str(Path(workflow.basedir) / "workflow")
sys.path.insert(0, PACKAGE_DIR)

from animefaces.config import section_json  # noqa: E402
from animefaces.shards import shard_names  # noqa: E402
from animefaces.wiring import (  # noqa: E402
    check_config,
    input_folder,
    output_folder,
    pack_card_config,
    pack_formats,
    pack_is_directory,
    pack_output,
    pack_params,
    pack_targets,
    report_files,
    report_manifests,
    train_data,
    train_launch,
    train_params,
    train_resources,
)

# Jobs run `python -m animefaces.<stage>` in whatever environment they get (venv, conda env, SLURM node):
# the package is importable there without being installed.
shell.prefix(f"export PYTHONPATH='{PACKAGE_DIR}'${{{{PYTHONPATH:+:$PYTHONPATH}}}}; ")

# Fail at DAG build, with the message naming the key, rather than in a job (e.g. 's' without a rating scheme).
check_config(config)

RES = f"results/{config['dataset']['name']}"
SHARDS = shard_names(config["shards"]["count"])
# Each rule file appends the outputs that `rule all` should build.
TARGETS = []
