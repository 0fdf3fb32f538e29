# The learned 2x upscaler (normalise.upscale.backend: learned): trained once per dataset on its own large crops
# (the kept dedup crops of every shard), cached in RES/upscale/model.pt. Only the normalise rule reads it, and only
# when the backend asks for it (animefaces.wiring.upscale_inputs), so the default lanczos DAG never includes it.


rule upscale_train:
    input:
        manifests=expand(f"{RES}/dedup/manifests/{{shard}}.parquet", shard=SHARDS),
        crops=expand(f"{RES}/crop/images/{{shard}}", shard=SHARDS),
    output:
        model=upscale_model_path(RES),
        report=f"{RES}/upscale/validation.json",
    log:
        f"{RES}/logs/upscale_train.log",
    benchmark:
        f"{RES}/benchmarks/upscale_train.tsv"
    conda:
        "../../envs/upscale.yaml"
    threads: 2
    resources:
        mem_mb=6000,
    params:
        res=results_of("manifests"),
        shards=config["shards"]["count"],
        cfg=upscale_train_params(config),
        runtime=runtime_params(config, "normalise"),
    shell:
        "python -m animefaces.upscale_train --results {params.res:q} --shards {params.shards} --out {output.model:q}"
        " --report {output.report:q} --params {params.cfg:q} --runtime {params.runtime:q} --threads {threads}"
        " > {log:q} 2>&1"
