# GAN training: one job. It trains in RES/train/runs/<n>-<pack hash>/ and resumes the run of the same pack by
# itself (snapshots are not declared outputs, so a failed or killed job keeps them and the rerun continues); a
# changed pack starts a new run. The outputs below are copies of the finished run's files. Needs the hdf5 or zip
# pack (pack.formats).
from animefaces.train.models import is_conditional

# The pack it reads (animefaces.wiring.train_data), the GPUs it requests and how it is launched come from the
# config; the rule only wires them.
TRAIN_DATA = train_data(config, RES)
# train.model (stylegan2 | biggan) and whether it is class-conditional decide which sample products are built.
TRAIN_MODEL = config["train"]["model"]
TRAIN_CONDITIONAL = is_conditional(config["train"])


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
        **train_resources(config),
    params:
        cfg=train_params(config),
        runtime=runtime_params(config, "train"),
        outdir=output_folder("network"),
        launch=runtime_value(train_launch(config)),
    shell:
        "{params.launch} --data {input.data:q} --outdir {params.outdir:q} --params {params.cfg:q}"
        " --runtime {params.runtime:q} --threads {threads} > {log:q} 2>&1"


TARGETS += [
    rules.train.output.network,
    rules.train.output.metrics,
    rules.train.output.plot,
]
