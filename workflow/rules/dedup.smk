# Duplicate removal: ONE global job over every shard's clean manifest (near duplicates cross shards).
# Exact duplicates by decoded pixels / file bytes, near duplicates by perceptual hash (sub-quadratic search).
# The command names the run's shards (--results/--shards), not its 2,000 files: a job's command is one argument to
# bash, which Linux caps at 128 KB (animefaces.manifest.shard_manifests).


rule dedup:
    input:
        manifests=expand(f"{RES}/clean/manifests/{{shard}}.parquet", shard=SHARDS),
    output:
        manifests=expand(f"{RES}/dedup/manifests/{{shard}}.parquet", shard=SHARDS),
        pairs=f"{RES}/dedup/pairs.parquet",
    log:
        f"{RES}/logs/dedup.log",
    benchmark:
        f"{RES}/benchmarks/dedup.tsv"
    conda:
        "../../envs/vision.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        res=results_of("manifests"),
        shards=config["shards"]["count"],
        cfg=section_json(config, "dedup"),
    shell:
        "python -m animefaces.dedup --results {params.res:q} --shards {params.shards}"
        " --pairs {output.pairs:q} --params {params.cfg:q} > {log:q} 2>&1"
