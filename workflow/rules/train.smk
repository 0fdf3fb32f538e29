# GAN training: one job. It trains in RES/train/runs/<n>-<pack hash>/ and resumes the run of the same pack by
# itself (snapshots are not declared outputs, so a failed or killed job keeps them and the rerun continues); a
# changed pack starts a new run. The outputs below are copies of the finished run's files. Needs the hdf5 or zip
# pack (pack.formats).
import json

# The HDF5 pack (the zip when pack.formats lists zip but not hdf5); the pack rule is run if needed.
_TRAIN_FORMATS = config["pack"].get("formats", [])
TRAIN_DATA = PACK_OUT[
    "zip" if "zip" in _TRAIN_FORMATS and "hdf5" not in _TRAIN_FORMATS else "hdf5"
]
# A GPU is requested only when the config asks for one (device cuda, or auto with gpus > 0); the SLURM profile
# maps the `gpu` resource to --gpus / gres.
TRAIN_GPUS = {
    "cpu": 0,
    "cuda": max(1, config["train"]["gpus"]),
    "auto": config["train"]["gpus"],
}[config["train"]["device"]]
# The train section minus the job-resource keys (changing mem_mb/runtime must not rerun training).
TRAIN_PARAMS = json.dumps(
    {k: v for k, v in config["train"].items() if k not in ("mem_mb", "runtime")},
    sort_keys=True,
    separators=(",", ":"),
)
# > 1 GPU: torchrun DDP on one node (one process per GPU).
TRAIN_LAUNCH = (
    f"torchrun --standalone --nproc_per_node={TRAIN_GPUS} -m animefaces.train"
    if TRAIN_GPUS > 1
    else "python -m animefaces.train"
)


rule train:
    input:
        data=TRAIN_DATA,
    output:
        network=f"{RES}/train/network-final.pt",
        metrics=f"{RES}/train/metrics.jsonl",
        plot=f"{RES}/train/losses.png",
        grids=f"{RES}/train/grids/index.json",
    log:
        f"{RES}/logs/train.log",
    benchmark:
        f"{RES}/benchmarks/train.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"] or 4
    resources:
        **({"gpu": TRAIN_GPUS} if TRAIN_GPUS > 0 else {}),
        mem_mb=config["train"]["mem_mb"],
        runtime=config["train"]["runtime"],
    params:
        cfg=TRAIN_PARAMS,
        outdir=lambda wildcards, output: str(Path(output.network).parent),
        launch=TRAIN_LAUNCH,
    shell:
        "{params.launch} --data {input.data:q} --outdir {params.outdir:q} --params {params.cfg:q}"
        " --threads {threads} > {log:q} 2>&1"


TARGETS += [
    rules.train.output.network,
    rules.train.output.metrics,
    rules.train.output.plot,
]
