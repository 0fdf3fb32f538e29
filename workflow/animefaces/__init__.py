"""animefaces: Danbooru-style image collection -> anime-face GAN dataset, model and samples.

Every workflow stage is a module with pure, importable functions plus a ``main(argv)`` CLI, run by the
Snakemake rules as ``python -m animefaces.<stage>``.
"""

__version__ = "0.1.0"
