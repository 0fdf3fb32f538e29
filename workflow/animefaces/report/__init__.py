"""Report assets for ``snakemake --report``: the ledger funnel, contact sheets of kept faces and of every drop
reason, duplicate pairs, pack dataset cards, training curves, tick grids and sample galleries.

Each asset is built by one ``python -m animefaces.report <asset>`` command (see :mod:`.cli`); the rules in
``workflow/rules/report.smk`` mark the outputs for the report with captions from ``workflow/report/*.rst``.
"""

from .cli import main

__all__ = ["main"]
