# Normalisation (per shard; shards.per_job shards per job): upscale small crops, resize/pad to exactly size x size
# 8-bit sRGB, PNG or JPEG, then the strict gate (every written file re-opened and checked; failures never go
# downstream).


rule normalise:
    input:
        manifests=shard_files(f"{RES}/dedup/manifests/{{shard}}.parquet"),
        crops=shard_files(f"{RES}/crop/images/{{shard}}"),
        upscale_model=upscale_inputs(config, RES),
    output:
        manifests=shard_files(f"{RES}/normalise/manifests/{{shard}}.parquet"),
        images=[directory(d) for d in shard_files(f"{RES}/normalise/images/{{shard}}")],
    log:
        f"{RES}/logs/normalise/{{batch}}.log",
    benchmark:
        f"{RES}/benchmarks/normalise/{{batch}}.tsv"
    conda:
        normalise_env(config)
    threads: 2
    resources:
        mem_mb=2000,
    params:
        cfg=section_json(config, "normalise"),
        runtime=runtime_params(config, "normalise"),
        upscale_model=upscale_model_flag(config, RES),
    shell:
        "python -m animefaces.normalise --input {input.manifests:q}"
        " --output {output.manifests:q} --images {output.images:q} --params {params.cfg:q} --runtime {params.runtime:q}"
        " {params.upscale_model} --threads {threads} > {log:q} 2>&1"


# The image folders are targets too: Snakemake does not remake a missing input of a job whose outputs are present
# (that is how temp() files work), so only a target makes `snakemake -n` notice deleted normalised images (and
# rerun normalise, then the packs, which declare them as input) instead of a pack job failing on them later.
TARGETS += expand(f"{RES}/normalise/manifests/{{shard}}.parquet", shard=SHARDS)
TARGETS += expand(f"{RES}/normalise/images/{{shard}}", shard=SHARDS)
