# Sampling from the trained generator: image sets per truncation psi, figures, interpolation video, montage.

SAMPLES = f"{RES}/samples"
SAMPLE_CMD = "python -m animefaces.sample {params.what} --params {params.cfg:q} --threads {threads}"


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
        grids=input_folder("grids"),
    shell:
        SAMPLE_CMD + " --grids {params.grids:q} --out {output.video:q} > {log:q} 2>&1"


TARGETS += [
    rules.sample_images.output.index,
    rules.sample_figures.output.truncation,
    rules.sample_figures.output.mixing,
    rules.sample_video.output.video,
    rules.sample_montage.output.video,
]
