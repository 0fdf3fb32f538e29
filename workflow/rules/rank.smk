# Discriminator ranking (one global job): every normalised face scored by a FROZEN trained discriminator
# (rank.network: a file no rule writes, e.g. RES/rank/discriminator.pt from `python -m animefaces.rank freeze RES`),
# so select -> pack -> train never feeds back into this rule within one DAG. Runs only when rank.network is set;
# select reads the table only when select.drop_bottom_fraction or select.min_d_score asks for a cut.

RANK_NETWORK = rank_network(config)
RANK_SCORES = f"{RES}/rank/scores.parquet"


rule rank:
    input:
        manifests=expand(f"{RES}/normalise/manifests/{{shard}}.parquet", shard=SHARDS),
        network=RANK_NETWORK,
    output:
        scores=RANK_SCORES,
        bottom=report(
            f"{RES}/rank/sheets/bottom.png",
            caption="../report/rank_sheets.rst",
            category="6. Discriminator ranking",
            labels={"figure": "lowest scores"},
        ),
        top=report(
            f"{RES}/rank/sheets/top.png",
            caption="../report/rank_sheets.rst",
            category="6. Discriminator ranking",
            labels={"figure": "highest scores"},
        ),
    log:
        f"{RES}/logs/rank.log",
    benchmark:
        f"{RES}/benchmarks/rank.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
    params:
        res=results_of("manifests"),
        shards=config["shards"]["count"],
        cfg=section_json(config, "rank"),
        sheets=output_folder("bottom"),
    shell:
        "python -m animefaces.rank --results {params.res:q} --shards {params.shards} --out {output.scores:q}"
        " --sheets {params.sheets:q} --params {params.cfg:q} --threads {threads} > {log:q} 2>&1"


if RANK_NETWORK:

    TARGETS += [RANK_SCORES]
