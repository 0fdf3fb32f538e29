# Selection: the user's exclude list and class filters over the normalised faces -> the final dataset table.
# The exclude file is an input of this rule only: editing it reruns select, the packs and what depends on them,
# never the earlier stages.


rule select:
    input:
        manifests=expand(f"{RES}/normalise/manifests/{{shard}}.parquet", shard=SHARDS),
        classes=f"{RES}/ingest/classes.tsv",
        exclude=config["select"]["exclude_file"] or [],
    output:
        manifest=f"{RES}/select/manifests/all.parquet",
        dataset=f"{RES}/select/dataset.parquet",
    log:
        f"{RES}/logs/select.log",
    benchmark:
        f"{RES}/benchmarks/select.tsv"
    conda:
        "../../envs/ingest.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        cfg=section_json(config, "select"),
    shell:
        "python -m animefaces.select --manifests {input.manifests:q} --classes {input.classes:q}"
        " --manifest-out {output.manifest:q} --dataset-out {output.dataset:q}"
        " --params {params.cfg:q} --threads {threads} > {log:q} 2>&1"


TARGETS += [f"{RES}/select/dataset.parquet"]
