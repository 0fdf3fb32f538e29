# Sampling from the trained generator: image sets per truncation psi, figures, interpolation video, montage.

SAMPLES = f"{RES}/samples"
CLASS_SAMPLES = f"{RES}/samples/classes"
SAMPLE_CMD = (
    "python -m animefaces.sample {params.what} --params {params.cfg:q}"
    " --runtime {params.runtime:q} --threads {threads}"
)


rule sample_images:
    input:
        network=rules.train.output.network,
    output:
        dirs=[directory(f"{SAMPLES}/psi{psi:.2f}") for psi in config["sample"]["psis"]],
        index=f"{SAMPLES}/images.json",
    log:
        f"{RES}/logs/sample/images.log",
    benchmark:
        f"{RES}/benchmarks/sample/images.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        what="images",
        cfg=section_json(config, "sample"),
        runtime=runtime_params(config, "sample"),
        outdir=output_folder("index"),
    shell:
        SAMPLE_CMD
        + " --network {input.network:q} --outdir {params.outdir:q} > {log:q} 2>&1"


rule sample_figures:
    input:
        network=rules.train.output.network,
    output:
        truncation=f"{SAMPLES}/truncation.png",
        mixing=expand(
            f"{SAMPLES}/style_mixing_{{r}}.png", r=["coarse", "middle", "fine"]
        ),
    log:
        f"{RES}/logs/sample/figures.log",
    benchmark:
        f"{RES}/benchmarks/sample/figures.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        what="figures",
        cfg=section_json(config, "sample"),
        runtime=runtime_params(config, "sample"),
        outdir=output_folder("truncation"),
    shell:
        SAMPLE_CMD
        + " --network {input.network:q} --outdir {params.outdir:q} > {log:q} 2>&1"


rule sample_video:
    input:
        network=rules.train.output.network,
    output:
        video=f"{SAMPLES}/interpolation.mp4",
    log:
        f"{RES}/logs/sample/video.log",
    benchmark:
        f"{RES}/benchmarks/sample/video.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        what="video",
        cfg=section_json(config, "sample"),
        runtime=runtime_params(config, "sample"),
    shell:
        SAMPLE_CMD
        + " --network {input.network:q} --out {output.video:q} > {log:q} 2>&1"


rule sample_montage:
    input:
        grids=rules.train.output.grids,
    output:
        video=f"{SAMPLES}/training_montage.mp4",
    log:
        f"{RES}/logs/sample/montage.log",
    benchmark:
        f"{RES}/benchmarks/sample/montage.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        what="montage",
        cfg=section_json(config, "sample"),
        runtime=runtime_params(config, "sample"),
        grids=input_folder("grids"),
    shell:
        "python -m animefaces.sample {params.what} --params {params.cfg:q} --runtime {params.runtime:q}"
        " --threads {threads} --grids {params.grids:q} --out {output.video:q} > {log:q} 2>&1"


# Class-conditional models (BigGAN, or StyleGAN2 with train.cond): sheets with rows = classes named from the
# ingest class table, a truncation figure, images per class, a class-interpolation video.


rule sample_class_sheets:
    input:
        network=rules.train.output.network,
        classes=f"{RES}/ingest/classes.tsv",
    output:
        index=f"{CLASS_SAMPLES}/sheets/sheets.json",
        truncation=f"{CLASS_SAMPLES}/sheets/truncation.png",
    log:
        f"{RES}/logs/sample/class_sheets.log",
    benchmark:
        f"{RES}/benchmarks/sample/class_sheets.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        what="sheets",
        cfg=section_json(config, "sample"),
        runtime=runtime_params(config, "sample"),
        outdir=output_folder("index"),
    shell:
        "python -m animefaces.sample_classes {params.what} --network {input.network:q}"
        " --classes {input.classes:q} --params {params.cfg:q} --runtime {params.runtime:q} --threads {threads}"
        " --outdir {params.outdir:q} > {log:q} 2>&1"


rule sample_class_images:
    input:
        network=rules.train.output.network,
        classes=f"{RES}/ingest/classes.tsv",
    output:
        index=f"{CLASS_SAMPLES}/images/index.json",
    log:
        f"{RES}/logs/sample/class_images.log",
    benchmark:
        f"{RES}/benchmarks/sample/class_images.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        what="images",
        cfg=section_json(config, "sample"),
        runtime=runtime_params(config, "sample"),
        outdir=output_folder("index"),
    shell:
        "python -m animefaces.sample_classes {params.what} --network {input.network:q}"
        " --classes {input.classes:q} --params {params.cfg:q} --runtime {params.runtime:q} --threads {threads}"
        " --outdir {params.outdir:q} > {log:q} 2>&1"


rule sample_class_video:
    input:
        network=rules.train.output.network,
        classes=f"{RES}/ingest/classes.tsv",
    output:
        video=f"{CLASS_SAMPLES}/class_interpolation.mp4",
    log:
        f"{RES}/logs/sample/class_video.log",
    benchmark:
        f"{RES}/benchmarks/sample/class_video.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 2
    params:
        what="video",
        cfg=section_json(config, "sample"),
        runtime=runtime_params(config, "sample"),
    shell:
        "python -m animefaces.sample_classes {params.what} --network {input.network:q}"
        " --classes {input.classes:q} --params {params.cfg:q} --runtime {params.runtime:q} --threads {threads}"
        " --out {output.video:q} > {log:q} 2>&1"


# The psi image sets, style-mixing figures and latent walk need StyleGAN2's mapping network; the montage of tick
# grids works for every model.
if TRAIN_MODEL == "stylegan2":
    TARGETS += [
        rules.sample_images.output.index,
        rules.sample_figures.output.truncation,
        rules.sample_figures.output.mixing,
        rules.sample_video.output.video,
    ]
TARGETS += [rules.sample_montage.output.video]
if TRAIN_CONDITIONAL:
    TARGETS += [
        rules.sample_class_sheets.output.index,
        rules.sample_class_images.output.index,
        rules.sample_class_video.output.video,
    ]
