# Selection: the user's exclude list and class filters over the normalised faces -> the final dataset table.
# The exclude file is an input of this rule only: editing it reruns select, the packs and what depends on them,
# never the earlier stages. The ranking table is an input only when select cuts by discriminator score.
SELECT_SCORES = (
    [RANK_SCORES]
    if config["select"]["drop_bottom_fraction"] > 0
    or config["select"]["min_d_score"] is not None
    else []
)


rule select:
    input:
        manifests=expand(f"{RES}/normalise/manifests/{{shard}}.parquet", shard=SHARDS),
        classes=f"{RES}/ingest/classes.tsv",
        exclude=config["select"]["exclude_file"] or [],
        scores=SELECT_SCORES,
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
        res=results_of("manifests"),
        shards=config["shards"]["count"],
        cfg=section_json(config, "select"),
        scores=f"--scores {RANK_SCORES}" if SELECT_SCORES else "",
        runtime=runtime_params(config, "select"),
    shell:
        "python -m animefaces.select --results {params.res:q} --shards {params.shards} --classes {input.classes:q}"
        " --manifest-out {output.manifest:q} --dataset-out {output.dataset:q}"
        " --params {params.cfg:q} --runtime {params.runtime:q} --threads {threads}"
        " {params.scores} > {log:q} 2>&1"


TARGETS += [f"{RES}/select/dataset.parquet"]
