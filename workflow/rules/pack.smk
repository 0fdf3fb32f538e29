# Packs for GAN training, one job per format in pack.formats, each with a dataset card.
import json

PACK_NAME = config["dataset"]["name"]
PACK_OUT = {
    "hdf5": f"{RES}/pack/hdf5/{PACK_NAME}.hdf5",
    "tfrecord": f"{RES}/pack/tfrecord/{PACK_NAME}",
    "zip": f"{RES}/pack/zip/{PACK_NAME}.zip",
}
# Each pack rule gets only its own format's options, so changing one format's settings reruns only that pack.
PACK_PARAMS = {
    f: json.dumps({f: config["pack"][f]}, sort_keys=True, separators=(",", ":"))
    for f in PACK_OUT
}
# Recorded in each dataset card (what produced the pack), next to the format's own options (--params).
PACK_CARD_CONFIG = json.dumps(
    {k: config[k] for k in ("dataset", "normalise", "select")},
    sort_keys=True,
    separators=(",", ":"),
)
PACK_CMD = (
    "python -m animefaces.pack {rule_format} --dataset {input.dataset:q} --classes {input.classes:q}"
    " --out {output.pack:q} --card {output.card:q} --name {params.name:q} --params {params.cfg:q}"
    " --card-config {params.card:q} --threads {threads} > {log:q} 2>&1"
)


rule pack_hdf5:
    input:
        dataset=f"{RES}/select/dataset.parquet",
        classes=f"{RES}/ingest/classes.tsv",
    output:
        pack=PACK_OUT["hdf5"],
        card=f"{RES}/pack/cards/hdf5.json",
    log:
        f"{RES}/logs/pack/hdf5.log",
    benchmark:
        f"{RES}/benchmarks/pack/hdf5.tsv"
    conda:
        "../../envs/pack.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        name=PACK_NAME,
        cfg=PACK_PARAMS["hdf5"],
        card=PACK_CARD_CONFIG,
    shell:
        PACK_CMD.replace("{rule_format}", "hdf5")


rule pack_tfrecord:
    input:
        dataset=f"{RES}/select/dataset.parquet",
        classes=f"{RES}/ingest/classes.tsv",
    output:
        pack=directory(PACK_OUT["tfrecord"]),
        card=f"{RES}/pack/cards/tfrecord.json",
    log:
        f"{RES}/logs/pack/tfrecord.log",
    benchmark:
        f"{RES}/benchmarks/pack/tfrecord.tsv"
    conda:
        "../../envs/pack.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        name=PACK_NAME,
        cfg=PACK_PARAMS["tfrecord"],
        card=PACK_CARD_CONFIG,
    shell:
        PACK_CMD.replace("{rule_format}", "tfrecord")


rule pack_zip:
    input:
        dataset=f"{RES}/select/dataset.parquet",
        classes=f"{RES}/ingest/classes.tsv",
    output:
        pack=PACK_OUT["zip"],
        card=f"{RES}/pack/cards/zip.json",
    log:
        f"{RES}/logs/pack/zip.log",
    benchmark:
        f"{RES}/benchmarks/pack/zip.tsv"
    conda:
        "../../envs/pack.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        name=PACK_NAME,
        cfg=PACK_PARAMS["zip"],
        card=PACK_CARD_CONFIG,
    shell:
        PACK_CMD.replace("{rule_format}", "zip")


for _fmt in config["pack"]["formats"]:
    TARGETS += [PACK_OUT[_fmt], f"{RES}/pack/cards/{_fmt}.json"]
