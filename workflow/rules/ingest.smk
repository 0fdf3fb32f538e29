# ingest: ONE job streams all Danbooru metadata (or lists the image folder), applies `filter` and `classes`, and
# writes a manifest for every shard (empty ones too), unsharded.parquet (records without a usable post id) and
# classes.tsv. Logic: workflow/animefaces/ingest/.
# The filter and classes blocks were checked before the DAG (animefaces.configcheck), e.g. 's' without a
# rating scheme.
from animefaces.wiring import metadata_files

# dataset.metadata may hold globs and directories: the rule's input is the files they stand for
METADATA_FILES = metadata_files(config)

INGEST_MANIFESTS = expand(
    f"{RES}/ingest/manifests/{{shard}}.parquet", shard=SHARDS + ["unsharded"]
)


rule ingest:
    input:
        metadata=METADATA_FILES,
        id_list=config["filter"]["id_list"] or [],
    output:
        manifests=INGEST_MANIFESTS,
        classes=f"{RES}/ingest/classes.tsv",
    log:
        f"{RES}/logs/ingest.log",
    benchmark:
        f"{RES}/benchmarks/ingest.tsv"
    conda:
        "../../envs/ingest.yaml"
    threads: 2  # 2 processes decode large plain JSON Lines files; the main one decides and writes
    resources:
        mem_mb=4000,
    params:
        out=output_folder("classes"),
        dataset=section_json(config, "dataset"),
        filter=section_json(config, "filter"),
        classes=section_json(config, "classes"),
        shards=config["shards"]["count"],
    shell:
        "python -m animefaces.ingest --out {params.out:q} --dataset {params.dataset:q}"
        " --filter {params.filter:q} --classes {params.classes:q} --shards {params.shards}"
        " --threads {threads} > {log} 2>&1"


TARGETS.extend(INGEST_MANIFESTS)
TARGETS.append(f"{RES}/ingest/classes.tsv")
