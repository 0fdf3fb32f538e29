# Report assets for `snakemake --report report.html` (or .zip): each rule turns other stages' outputs into a
# figure or table under RES/report/ and marks it for the report with a caption from workflow/report/.
# Logic lives in animefaces.report (python -m animefaces.report <asset> ...).


report: "../report/workflow.rst"


REPORT_DIR = f"{RES}/report"
# Every stage manifest, in ledger.STAGES order: the funnel and the drop sheets read the whole ledger. The jobs get
# the run's results folder and shard count (animefaces.ledger.ledger_manifests lists exactly its files), neither
# 5,001 inputs (each looked up by a scan of ingest's and dedup's 1,000 outputs: a quadratic DAG build) nor 5,001
# paths on the command line (~200 KB at 1000 shards; Linux caps one argument, the command bash runs, at 128 KB).
# The inputs are the fan-in files that are newer than every one of those manifests whenever any of them changes
# (select's manifest: after every normalise, dedup, clean, crop and ingest job; dedup's pairs: after every dedup,
# clean, crop and ingest job), plus ingest's unsharded file, which no later stage reads. A deleted manifest reruns
# its own job (a target of `rule all` or the input of the next stage), hence these.
REPORT_LEDGER = [
    f"{RES}/ingest/manifests/unsharded.parquet",
    f"{RES}/select/manifests/all.parquet",
]
REPORT_LEDGER_UNTIL_DEDUP = [
    f"{RES}/ingest/manifests/unsharded.parquet",
    f"{RES}/dedup/pairs.parquet",
]


rule report_funnel:
    input:
        ledger=REPORT_LEDGER,
    output:
        tsv=report(
            f"{REPORT_DIR}/funnel.tsv",
            caption="../report/funnel_table.rst",
            category="1. Funnel",
            labels={"figure": "funnel table (TSV)"},
        ),
        html=report(
            f"{REPORT_DIR}/funnel.html",
            caption="../report/funnel_table.rst",
            category="1. Funnel",
            labels={"figure": "funnel table"},
        ),
        png=report(
            f"{REPORT_DIR}/funnel.png",
            caption="../report/funnel_chart.rst",
            category="1. Funnel",
            labels={"figure": "funnel chart"},
        ),
    log:
        f"{RES}/logs/report/funnel.log",
    conda:
        "../../envs/report.yaml"
    params:
        res=results_of("ledger"),
        shards=config["shards"]["count"],
    shell:
        "python -m animefaces.report funnel {params.res:q} --shards {params.shards} --tsv {output.tsv:q} --html {output.html:q}"
        " --png {output.png:q} > {log:q} 2>&1"


rule report_kept:
    input:
        dataset=f"{RES}/select/dataset.parquet",
    output:
        report(
            f"{REPORT_DIR}/contact_kept.png",
            caption="../report/contact_kept.rst",
            category="2. Kept faces",
            labels={"figure": "final dataset sample"},
        ),
    log:
        f"{RES}/logs/report/kept.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m animefaces.report kept {input.dataset:q} --out {output:q} > {log:q} 2>&1"


rule report_drops:
    input:
        ledger=REPORT_LEDGER,
    output:
        report(
            directory(f"{REPORT_DIR}/drops"),
            patterns=["{stage,[a-z]+}-{reason}.png"],
            caption="../report/contact_drops.rst",
            category="3. Dropped items",
            subcategory="{stage}",
            labels={"stage": "{stage}", "reason": "{reason}"},
        ),
    log:
        f"{RES}/logs/report/drops.log",
    conda:
        "../../envs/report.yaml"
    params:
        res=results_of("ledger"),
        shards=config["shards"]["count"],
    shell:
        "python -m animefaces.report drops {params.res:q} --shards {params.shards} --out {output:q} > {log:q} 2>&1"


rule report_pairs:
    input:
        ledger=REPORT_LEDGER_UNTIL_DEDUP,
    output:
        report(
            f"{REPORT_DIR}/dup_pairs.png",
            caption="../report/dup_pairs.rst",
            category="4. Duplicates",
            labels={"figure": "duplicate pairs"},
        ),
    log:
        f"{RES}/logs/report/pairs.log",
    conda:
        "../../envs/report.yaml"
    params:
        res=results_of("ledger"),
        shards=config["shards"]["count"],
    shell:
        "python -m animefaces.report pairs {params.res:q} --shards {params.shards} --out {output:q} > {log:q} 2>&1"


rule report_cards:
    input:
        cards=expand(f"{RES}/pack/cards/{{fmt}}.json", fmt=config["pack"]["formats"]),
    output:
        report(
            f"{REPORT_DIR}/cards.html",
            caption="../report/cards.rst",
            category="5. Dataset packs",
            labels={"figure": "dataset cards"},
        ),
    log:
        f"{RES}/logs/report/cards.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m animefaces.report cards {input.cards:q} --out {output:q} > {log:q} 2>&1"


rule report_training:
    input:
        metrics=rules.train.output.metrics,
        grids=rules.train.output.grids,
    output:
        curves=report(
            f"{REPORT_DIR}/training_curves.png",
            caption="../report/training_curves.rst",
            category="6. Training",
            labels={"figure": "training curves"},
        ),
        grids=report(
            f"{REPORT_DIR}/tick_grids.png",
            caption="../report/tick_grids.rst",
            category="6. Training",
            labels={"figure": "tick grids"},
        ),
    log:
        f"{RES}/logs/report/training.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m animefaces.report training {input.metrics:q} --grids {input.grids:q}"
        " --curves {output.curves:q} --montage {output.grids:q} > {log:q} 2>&1"


# What the samples page shows: StyleGAN2's psi image sets, figures and videos; for BigGAN (no mapping network, so
# none of those are built) the class sheets (rows = classes) with their truncation figure, a gallery of the images
# per class, the class-interpolation video and the training montage.
if TRAIN_MODEL == "stylegan2":
    REPORT_SAMPLE_PRODUCTS = [
        *rules.sample_images.output.dirs,
        *rules.sample_figures.output,
        rules.sample_video.output.video,
        rules.sample_montage.output.video,
    ]
else:
    REPORT_SAMPLE_PRODUCTS = [
        rules.sample_class_sheets.output.index,
        rules.sample_class_images.output.index,
        rules.sample_class_video.output.video,
        rules.sample_montage.output.video,
    ]


rule report_samples:
    input:
        products=REPORT_SAMPLE_PRODUCTS,
    output:
        report(
            directory(f"{REPORT_DIR}/samples"),
            patterns=["{kind,[a-z]+}-{name}.{ext,png|mp4|webm|gif}"],
            caption="../report/samples.rst",
            category="7. Samples",
            subcategory="{kind}",
            labels={"figure": "{name}", "kind": "{kind}"},
        ),
    log:
        f"{RES}/logs/report/samples.log",
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m animefaces.report samples {input.products:q}"
        " --out {output:q} > {log:q} 2>&1"


TARGETS.extend(
    [
        rules.report_funnel.output.html,
        rules.report_funnel.output.png,
        rules.report_kept.output[0],
        rules.report_drops.output[0],
        rules.report_pairs.output[0],
        rules.report_cards.output[0],
        rules.report_training.output.curves,
        rules.report_samples.output[0],
    ]
)
