# shards.fuse (for huge runs): crop and clean of a shard as ONE job, so a 1000-shard plan has 1000 fewer jobs
# (Snakemake's own cost is per job: BENCHMARKS.md, "5M-post plan"). The job runs the two stages' own commands in
# turn, exactly as the crop and clean rules do: each writes its own manifest (ledger rows), images and log,
# atomically. The outputs are both rules' outputs, so a change of either stage's settings reruns both, and a
# failed clean removes that shard's crops too (the rerun redoes the shard).

if config["shards"]["fuse"]:

    rule crop_clean:
        input:
            manifests=shard_files(f"{RES}/ingest/manifests/{{shard}}.parquet"),
            cascade="resources/lbpcascade_animeface.xml",
            blocklist=config["clean"]["blocklist"] or [],
        output:
            crop_manifests=shard_files(f"{RES}/crop/manifests/{{shard}}.parquet"),
            images=[directory(d) for d in shard_files(f"{RES}/crop/images/{{shard}}")],
            manifests=shard_files(f"{RES}/clean/manifests/{{shard}}.parquet"),
        log:
            crop=f"{RES}/logs/crop/{{batch}}.log",
            clean=f"{RES}/logs/clean/{{batch}}.log",
        benchmark:
            f"{RES}/benchmarks/crop_clean/{{batch}}.tsv"
        conda:
            "../../envs/vision.yaml"
        threads: 2
        resources:
            mem_mb=2000,
        params:
            crop=section_json(config, "crop"),
            crop_runtime=runtime_params(config, "crop"),
            clean=section_json(config, "clean"),
            hash=config["dedup"]["hash"],
            clean_runtime=runtime_params(config, "clean"),
        shell:
            "python -m animefaces.crop --manifest {input.manifests:q}"
            " --cascade {input.cascade:q} --out-manifest {output.crop_manifests:q} --images {output.images:q}"
            " --params {params.crop:q} --runtime {params.crop_runtime:q} --threads {threads} > {log.crop:q} 2>&1"
            " && python -m animefaces.clean --input {output.crop_manifests:q}"
            " --output {output.manifests:q} --params {params.clean:q} --runtime {params.clean_runtime:q}"
            " --hash {params.hash} --threads {threads} > {log.clean:q} 2>&1"
