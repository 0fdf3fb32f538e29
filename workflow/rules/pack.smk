# Packs for GAN training: one rule per registered format (animefaces.pack.formats), each with a dataset card.
# Each rule gets only its own format's options, so changing one format's settings reruns only that pack.

PACK_NAME = config["dataset"]["name"]
# The normalised images the dataset table points at: declared so that a rerun of normalise (deleted images: they
# are targets of `rule all`, see normalise.smk) reruns the packs too.
PACK_IMAGES = expand(f"{RES}/normalise/images/{{shard}}", shard=SHARDS)

for _fmt in pack_formats():

    rule:
        name:
            f"pack_{_fmt}"
        input:
            dataset=f"{RES}/select/dataset.parquet",
            classes=f"{RES}/ingest/classes.tsv",
            images=PACK_IMAGES,
        output:
            pack=(
                directory(pack_output(RES, PACK_NAME, _fmt))
                if pack_is_directory(_fmt)
                else pack_output(RES, PACK_NAME, _fmt)
            ),
            card=f"{RES}/pack/cards/{_fmt}.json",
        log:
            f"{RES}/logs/pack/{_fmt}.log",
        benchmark:
            f"{RES}/benchmarks/pack/{_fmt}.tsv"
        conda:
            "../../envs/pack.yaml"
        threads: 2
        resources:
            mem_mb=2000,
        params:
            format=_fmt,
            name=PACK_NAME,
            cfg=pack_params(config, _fmt),
            card=pack_card_config(config),
        shell:
            "python -m animefaces.pack {params.format} --dataset {input.dataset:q} --classes {input.classes:q}"
            " --out {output.pack:q} --card {output.card:q} --name {params.name:q} --params {params.cfg:q}"
            " --card-config {params.card:q} --threads {threads} > {log:q} 2>&1"


TARGETS += pack_targets(config, RES)
