"""Discriminator ranking: deterministic scores averaged over shuffles, frozen D files, the select cut
(drop_bottom_fraction / min_d_score) removing exactly the named items like the exclude list does, and the
workflow wiring (a ranking cut reruns only rank's consumers: select and the packs; no cycle through training)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from animefaces import rank, select
from animefaces.config import defaults
from animefaces.manifest import StageRows, manifest_path, write_manifest
from animefaces.train.networks import Discriminator
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_partial_rerun import PACK_RULES, copy_workflow, planned_jobs, snakemake, write_config  # noqa: E402

D_KWARGS = {"resolution": 16, "channel_base": 512, "channel_max": 32, "mbstd_group": 4}


def save_d(path: Path, seed: int = 0, snapshot: bool = False) -> Path:
    torch.manual_seed(seed)
    D = Discriminator(**D_KWARGS)
    obj = {"D": D.state_dict(), "D_kwargs": dict(D.init_kwargs)}
    if snapshot:
        obj.update(format="animefaces-snapshot-v1", counters={"nimg": 1000})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(obj, path)
    return path


def faces(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 3, 1, 1))
    return np.clip(base + rng.integers(-40, 40, (n, 3, size, size)), 0, 255).astype(np.uint8)


def test_scores_are_deterministic_and_depend_on_batch_companions(tmp_path):
    D, _ = rank.load_discriminator(save_d(tmp_path / "d.pt"))
    x = faces(13, 16)
    a = rank.score_images(D, x, batch=4, shuffles=5, seed=3)
    b = rank.score_images(D, x, batch=4, shuffles=5, seed=3)
    assert a.shape == (5, 13) and np.array_equal(a, b)
    c = rank.score_images(D, x, batch=4, shuffles=5, seed=4)
    assert not np.array_equal(a, c)
    # minibatch-stddev: the same image scores differently with other companions, so shuffles matter
    assert (a.std(axis=0) > 0).all()
    # batch 1: no companions, every shuffle gives the same score
    single = rank.score_images(D, x, batch=1, shuffles=3, seed=0)
    assert np.allclose(single, single[0])


def test_load_and_freeze_the_newest_snapshot(tmp_path):
    res = tmp_path / "results" / "demo"
    old = save_d(res / "train" / "runs" / "1-aaaaaaaa" / "snapshots" / "snapshot-0000000001.000.pt", 1, True)
    new = save_d(res / "train" / "runs" / "2-bbbbbbbb" / "snapshots" / "snapshot-0000000000.500.pt", 2, True)
    os.utime(old, (1, 1))
    assert rank.newest_snapshot(res / "train") == new
    frozen = rank.freeze(res)
    assert frozen == res / "rank" / "discriminator.pt"
    D, meta = rank.load_discriminator(frozen)
    Dn, _ = rank.load_discriminator(new)
    x = faces(8, 16)
    assert np.array_equal(rank.score_images(D, x), rank.score_images(Dn, x)) and meta["source"] == str(new)
    gen_only = tmp_path / "network-final.pt"
    torch.save({"format": "animefaces-network-v1", "G_ema": {}}, gen_only)
    with pytest.raises(rank.RankError, match="no discriminator"):
        rank.load_discriminator(gen_only)
    with pytest.raises(rank.RankError, match="freeze"):
        rank.load_discriminator(tmp_path / "missing.pt")


def normalised(root: Path, name: str, n: int = 12, size: int = 32, shards: int = 2) -> list[str]:
    """Normalise manifests + PNGs as normalisation leaves them; returns the item ids."""
    res = root / "results" / name
    x = faces(n, size)
    ids = []
    for s in range(shards):
        shard = f"{s:03d}"
        rows = StageRows("normalise", shard)
        for k in range(s, n, shards):
            item = f"{100 + k}_0"
            rel = Path("results") / name / "normalise" / "images" / shard / f"{item}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(x[k].transpose(1, 2, 0)).save(root / rel)
            sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
            rows.kept(100 + k, item, item, path=str(rel), sha256=sha, label=0, character="")
            ids.append(item)
        write_manifest(rows.frame(), manifest_path(res, "normalise", shard))
    (res / "ingest").mkdir(parents=True, exist_ok=True)
    (res / "ingest" / "classes.tsv").write_text("class_id\tname\tcount\n", encoding="utf-8")
    return ids


@pytest.fixture
def ranked(tmp_path, monkeypatch) -> tuple[Path, list[str], dict, pd.DataFrame]:
    """12 normalised faces over 2 shards in tmp_path/results/r (the working directory), ranked by a fresh D:
    (RES, its normalise manifests, the rank params, the ranking table)."""
    monkeypatch.chdir(tmp_path)
    normalised(tmp_path, "r", n=12)
    res = Path("results/r")
    manifests = sorted(str(p) for p in (res / "normalise" / "manifests").glob("*.parquet"))
    params = {**defaults()["rank"], "network": str(save_d(tmp_path / "d.pt"))}
    table = rank.run(manifests, params, str(res / "rank" / "scores.parquet"), str(res / "rank" / "sheets"))
    return res, manifests, params, table


def test_cli_names_the_runs_shards_and_writes_the_same_table(ranked):
    """What the rule passes (``--results RES --shards N``) ranks exactly the listed manifests."""
    res, manifests, params, _ = ranked
    argv = ["--sheets", "cli_sheets", "--params", json.dumps(params)]
    assert rank.main(["--results", str(res), "--shards", "2", "--out", "named.parquet", *argv]) == 0
    assert rank.main(["--manifests", *manifests, "--out", "listed.parquet", *argv]) == 0
    fixture_table = (res / "rank" / "scores.parquet").read_bytes()
    assert Path("named.parquet").read_bytes() == Path("listed.parquet").read_bytes() == fixture_table


def test_drop_bottom_fraction_and_exclude_list_remove_exactly_the_named_items(ranked):
    res, manifests, _, table = ranked
    assert len(table) == 12 and table["rank"].tolist() == list(range(1, 13))
    assert table["score_mean"].is_monotonic_increasing
    assert (res / "rank" / "sheets" / "bottom.png").exists() and (res / "rank" / "sheets" / "top.png").exists()
    bottom = table["item_id"].head(3).tolist()  # floor(0.25 * 12) = 3

    sel = {**defaults()["select"], "exclude_file": "", "drop_bottom_fraction": 0.25}
    cut = select.run(
        manifests, str(res / "ingest" / "classes.tsv"), sel, "cut.parquet", "cut_ds.parquet",
        scores=str(res / "rank" / "scores.parquet"),
    )  # fmt: skip
    assert sorted(set(table["item_id"]) - set(cut["item_id"])) == sorted(bottom)
    ledger = pd.read_parquet("cut.parquet").set_index("item_id")
    assert set(ledger.index[ledger["reason"] == "low_d_score"]) == set(bottom)

    Path("exclude.txt").write_text("".join(f"{i}\n" for i in bottom))
    excl = {**defaults()["select"], "exclude_file": "exclude.txt"}
    by_list = select.run(manifests, str(res / "ingest" / "classes.tsv"), excl, "ex.parquet", "ex_ds.parquet")
    assert by_list.equals(cut)  # the same next pack either way

    # a score threshold names the items below it
    limit = float(table["score_mean"].iloc[4])
    thr = {**defaults()["select"], "exclude_file": "", "min_d_score": limit}
    out = select.run(
        manifests, str(res / "ingest" / "classes.tsv"), thr, "t.parquet", "t_ds.parquet",
        scores=str(res / "rank" / "scores.parquet"),
    )  # fmt: skip
    assert sorted(set(table["item_id"]) - set(out["item_id"])) == sorted(table["item_id"].head(4))
    with pytest.raises(select.SelectError, match="rank.network"):
        select.run(manifests, None, sel, "x.parquet", "x_ds.parquet")


MINI_SNAKEFILE = """
configfile: "config/demo.yaml"

include: "workflow/rules/common.smk"
include: "workflow/rules/rank.smk"
include: "workflow/rules/select.smk"
include: "workflow/rules/pack.smk"

rule all:
    input: TARGETS
"""


def test_ranking_cut_reruns_only_select_and_the_packs(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "Snakefile").write_text(MINI_SNAKEFILE)
    network = "results/mini/rank/discriminator.pt"
    formats = {"formats": ["hdf5", "tfrecord", "zip"]}
    write_config(wd, {"dataset": {"name": "mini"}, "shards": {"count": 2}, "pack": formats, "normalise": {"size": 32}})
    normalised(wd, "mini", n=10)
    save_d(wd / network)
    snakemake(wd)
    assert not (wd / "results" / "mini" / "rank").joinpath("scores.parquet").exists()  # no network: no ranking
    write_config(wd, {"rank": {"network": network}})
    assert planned_jobs(wd) == {"rank": 1, "all": 1}  # ranking alone does not touch the dataset
    snakemake(wd)
    scores = pd.read_parquet(wd / "results" / "mini" / "rank" / "scores.parquet")
    write_config(wd, {"select": {"drop_bottom_fraction": 0.2}})
    assert planned_jobs(wd) == {"select": 1, **dict.fromkeys(PACK_RULES, 1), "all": 1}
    snakemake(wd)
    ds = pd.read_parquet(wd / "results" / "mini" / "select" / "dataset.parquet")
    assert set(scores["item_id"]) - set(ds["item_id"]) == set(scores["item_id"].head(2))
    # a newly frozen discriminator reruns the ranking and what reads it, nothing upstream
    save_d(wd / network, seed=5)
    assert planned_jobs(wd) == {"rank": 1, "select": 1, **dict.fromkeys(PACK_RULES, 1), "all": 1}


def test_sheets_print_each_items_id_under_it_and_go_into_the_report(ranked, tmp_path, monkeypatch):
    """The bottom/top sheets carry each item's id (in rank order) drawn under its face, and the rank rule hands
    them to ``snakemake --report`` (category "6. Discriminator ranking")."""
    from animefaces.report import images

    _, _, _, table = ranked
    captured = []
    real = images.contact_sheet

    def spy(tiles, **kw):
        captured.append((tiles, kw))
        return real(tiles, **kw)

    monkeypatch.setattr(images, "contact_sheet", spy)
    rank.sheets(table, tmp_path / "s", 0.25, 100)
    (bottom, kw), (top, _) = captured
    assert [t.lines[0] for t in bottom] == table["item_id"].head(3).tolist()
    assert [t.lines[0] for t in top] == table["item_id"].tail(3).iloc[::-1].tolist()
    # the ids are drawn: the same sheet with other ids under the faces differs in pixels
    other = [images.Tile(path=t.path, lines=["999999_9", t.lines[1]]) for t in bottom]
    assert np.asarray(real(bottom, **kw)).tolist() != np.asarray(real(other, **kw)).tolist()

    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    repo = Path(__file__).resolve().parent.parent
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(config={"rank": {"network": "results/demo/rank/discriminator.pt"}}),
            snakefile=repo / "Snakefile",
            workdir=repo,
        )._workflow
        rule = next(r for r in wf.rules if r.name == "rank")
        flagged = {Path(str(f)).name: f.flags.get("report") for f in rule.output}
    assert flagged["bottom.png"] and flagged["top.png"]
    assert flagged["bottom.png"].category == "6. Discriminator ranking"
