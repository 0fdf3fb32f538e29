# Cleaning (per shard; shards.per_job shards per job): full decode of every face crop, size/monochrome/blocklist
# drops, hashes for dedup (the perceptual hash is dedup's choice, dedup.hash: changing it reruns clean and dedup).
# The optional blocklist file is an input, so editing it reruns clean (and everything after it).


if not config["shards"]["fuse"]:

    rule clean:
        input:
            manifests=shard_files(f"{RES}/crop/manifests/{{shard}}.parquet"),
            images=shard_files(f"{RES}/crop/images/{{shard}}"),
            blocklist=config["clean"]["blocklist"] or [],
        output:
            manifests=shard_files(f"{RES}/clean/manifests/{{shard}}.parquet"),
        log:
            f"{RES}/logs/clean/{{batch}}.log",
        benchmark:
            f"{RES}/benchmarks/clean/{{batch}}.tsv"
        conda:
            "../../envs/vision.yaml"
        threads: 2
        resources:
            mem_mb=2000,
        params:
            cfg=section_json(config, "clean"),
            hash=config["dedup"]["hash"],
            runtime=runtime_params(config, "clean"),
        shell:
            "python -m animefaces.clean --input {input.manifests:q}"
            " --output {output.manifests:q} --params {params.cfg:q} --runtime {params.runtime:q} --hash {params.hash}"
            " --threads {threads} > {log:q} 2>&1"
