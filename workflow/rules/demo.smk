# demo: when demo.enabled, ONE job draws the seeded Danbooru-format mirror at dataset.root (images first,
# then the three metadata files that dataset.metadata lists, then ground_truth.json with every planted case's
# expected ledger outcome). Logic: workflow/animefaces/demo/.
from animefaces.demo import GROUND_TRUTH

# animefaces.configcheck has already refused (before any job, naming the key) a demo whose dataset.metadata is
# not the demo's files or whose dataset.root is a real mirror.

if config["demo"]["enabled"]:

    rule demo_corpus:
        output:
            metadata=config["dataset"]["metadata"],
            truth=f"{config['dataset']['root']}/{GROUND_TRUTH}",
        log:
            f"{RES}/logs/demo.log",
        benchmark:
            f"{RES}/benchmarks/demo.tsv"
        conda:
            "../../envs/ingest.yaml"
        threads: 2
        resources:
            mem_mb=1500,
        params:
            cfg=section_json(config, "demo"),
            root=output_folder("truth"),
        shell:
            "python -m animefaces.demo --root {params.root:q} --params {params.cfg:q}"
            " --metadata {output.metadata:q} --threads {threads} > {log} 2>&1"

    TARGETS.append(f"{config['dataset']['root']}/{GROUND_TRUTH}")
