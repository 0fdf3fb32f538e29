# animefaces: Danbooru-style images -> face crops -> cleaned, deduplicated dataset -> packs -> GAN -> samples.
# Rules are thin: each calls `python -m animefaces.<stage>`; all logic lives in workflow/animefaces/.


# No --configfile: the embedded demo (config/demo.yaml). A user's --configfile is never merged over the demo: it
# gets the schema defaults (config/config.yaml is the template for real data; config/README.md explains it).
if not workflow.overwrite_configfiles:

    configfile: "config/demo.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    shard=r"\d{3}",
    batch=BATCH_RE,


include: "workflow/rules/demo.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/crop.smk"
include: "workflow/rules/clean.smk"
include: "workflow/rules/crop_clean.smk"
include: "workflow/rules/dedup.smk"
include: "workflow/rules/upscale.smk"
include: "workflow/rules/normalise.smk"
include: "workflow/rules/rank.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/pack.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        TARGETS,
