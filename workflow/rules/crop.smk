# Face cropping: the cascade as a checksummed resource, then one crop job per shard (per shards.per_job shards:
# wildcard `batch`, shard_files() lists each shard's own files; every per-shard rule works this way).


# Only crop.cascade_path is passed (not the whole section), so tuning the detector does not refetch the file; it
# is a runtime value (moving the file refetches nothing: the output is checked against its sha256).
# A local rule: on a cluster the download runs where the internet is.
rule fetch_cascade:
    output:
        "resources/lbpcascade_animeface.xml",
    log:
        f"{RES}/logs/fetch_cascade.log",
    localrule: True
    conda:
        "../../envs/vision.yaml"
    params:
        cascade_path=runtime_value(config["crop"]["cascade_path"] or ""),
    shell:
        "python -m animefaces.resources --dest {output:q} --cascade-path={params.cascade_path:q} > {log:q} 2>&1"


# With shards.fuse the crop_clean rule (crop_clean.smk) runs this command and clean's in one job per shard.
if not config["shards"]["fuse"]:

    rule crop:
        input:
            manifests=shard_files(f"{RES}/ingest/manifests/{{shard}}.parquet"),
            cascade="resources/lbpcascade_animeface.xml",
        output:
            manifests=shard_files(f"{RES}/crop/manifests/{{shard}}.parquet"),
            images=[directory(d) for d in shard_files(f"{RES}/crop/images/{{shard}}")],
        log:
            f"{RES}/logs/crop/{{batch}}.log",
        benchmark:
            f"{RES}/benchmarks/crop/{{batch}}.tsv"
        conda:
            "../../envs/vision.yaml"
        threads: 2
        resources:
            mem_mb=2000,
        params:
            cfg=section_json(config, "crop"),
            runtime=runtime_params(config, "crop"),
        shell:
            "python -m animefaces.crop --manifest {input.manifests:q}"
            " --cascade {input.cascade:q} --out-manifest {output.manifests:q} --images {output.images:q}"
            " --params {params.cfg:q} --runtime {params.runtime:q} --threads {threads} > {log:q} 2>&1"


TARGETS += expand(f"{RES}/crop/manifests/{{shard}}.parquet", shard=SHARDS)
