"""Selection: exclude list, class filters, the ranking-cut hook, the ledger rows and the re-checked dataset table."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from animefaces import ledger, select
from animefaces.config import defaults
from animefaces.manifest import StageRows, manifest_path, shard_manifests, write_manifest
from PIL import Image

CLASSES = {1: "hakurei_reimu", 2: "kirisame_marisa", 3: "izayoi_sakuya"}


def write_normalised(results: Path, posts: dict[int, list[int]]) -> list[Path]:
    """Normalise manifests for posts {post_id: [label of face 0, face 1, ...]} over two shards (with real image
    files), plus one dropped row, and classes.tsv. Returns the manifest paths."""
    rng = np.random.default_rng(0)
    rows = {"000": StageRows("normalise", "000"), "001": StageRows("normalise", "001")}
    for post, labels in posts.items():
        shard = "000" if post % 1000 < 500 else "001"
        for n, label in enumerate(labels):
            item = f"{post}_{n}"
            path = results / "normalise" / "images" / shard / f"{item}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
            rows[shard].kept(
                post,
                item,
                item,
                path=str(path),
                sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                label=label,
                character=CLASSES.get(label, ""),
            )
    rows["000"].dropped(7, "7_0", "gate_failed", {"why": "blurry"})
    paths = []
    for shard, r in rows.items():
        p = manifest_path(results, "normalise", shard)
        write_manifest(r.frame(), p)
        paths.append(p)
    (results / "classes.tsv").write_text(
        "class_id\tname\tcount\n" + "".join(f"{k}\t{v}\t5\n" for k, v in CLASSES.items()), encoding="utf-8"
    )
    return paths


POSTS = {10: [1, 1], 11: [2], 520: [0, 3], 521: [1], 600: [2, 0], 9: [3]}


def params(**kw) -> dict:
    p = defaults()["select"]
    p["exclude_file"] = ""
    p.update(kw)
    return p


def run(tmp_path: Path, **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    manifests = write_normalised(tmp_path, POSTS)
    out_manifest = tmp_path / "select" / "manifests" / "all.parquet"
    out_dataset = tmp_path / "select" / "dataset.parquet"
    select.run([str(m) for m in manifests], str(tmp_path / "classes.tsv"), params(**kw), out_manifest, out_dataset)
    return pd.read_parquet(out_manifest), pd.read_parquet(out_dataset)


def test_parse_exclude_file_formats_and_errors(tmp_path):
    ex = select.parse_exclude(["# header", "", "  4018204_0  ", "123 # whole post", "0042_01", "123"], "ex.txt")
    assert ex.items == {"4018204_0": 3, "42_1": 5}
    assert ex.posts == {123: 4}
    with pytest.raises(select.SelectError, match=r"ex.txt:2: 'abc' is not an item id"):
        select.parse_exclude(["1_0", "abc"], "ex.txt")
    with pytest.raises(select.SelectError, match="two ids|not an item id"):
        select.parse_exclude(["1_0 2_0"], "ex.txt")
    with pytest.raises(select.SelectError, match="select.exclude_file"):
        select.read_exclude(tmp_path / "missing.txt")
    assert len(select.read_exclude("")) == 0


def test_no_filters_keeps_everything_in_post_order(tmp_path):
    man, ds = run(tmp_path)
    assert ds["item_id"].tolist() == ["9_0", "10_0", "10_1", "11_0", "520_0", "520_1", "521_0", "600_0", "600_1"]
    assert list(ds.columns) == select.DATASET_COLUMNS
    assert (man["status"] == "kept").all() and len(man) == 9
    assert set(man["shard"]) == {"000", "001"}
    assert ds["label"].tolist() == [3, 1, 1, 2, 0, 3, 1, 2, 0]


def test_exclude_items_and_posts_with_ledger_rows(tmp_path):
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("# bad crops\n10_1\n520   # both faces of this post\n999_0\n", encoding="utf-8")
    man, ds = run(tmp_path, exclude_file=str(exclude))
    dropped = man[man["status"] == "dropped"].set_index("item_id")
    assert sorted(dropped.index) == ["10_1", "520_0", "520_1"]
    assert set(dropped["reason"]) == {"excluded_by_user"}
    assert json.loads(dropped.loc["10_1", "details"]) == {"file": str(exclude), "line": 2, "matched": "item"}
    assert json.loads(dropped.loc["520_0", "details"])["matched"] == "post"
    assert "10_1" not in set(ds["item_id"]) and len(ds) == 6
    # the ledger adds up across normalise -> select
    led = ledger.load_ledger(tmp_path)
    assert ledger.reconcile(led) == []
    table = ledger.funnel(led)
    totals = table[(table["stage"] == "select") & (table["reason"] == "")].iloc[0]
    assert totals["in"] == 9 and totals["kept"] == 6 and totals["dropped"] == 3


def test_class_filters(tmp_path):
    _, ds = run(tmp_path / "a", classes=["hakurei_reimu", 3])
    assert sorted(set(ds["label"])) == [0, 1, 3]
    man, ds = run(tmp_path / "b", classes=["hakurei_reimu"], keep_unlabelled=False)
    assert set(ds["label"]) == {1}
    reasons = man[man["status"] == "dropped"]["details"].map(lambda d: json.loads(d)["rule"])
    assert set(reasons) == {"classes", "keep_unlabelled"}
    assert set(man.loc[man["status"] == "dropped", "reason"]) == {"class_filtered"}
    # min_class_count counts what is left after the exclusions: class 1 has 3 items, 2 and 3 have 2 each
    man, ds = run(tmp_path / "c", min_class_count=3)
    assert set(ds["label"]) == {0, 1}
    small = man[man["status"] == "dropped"]["details"].map(json.loads)
    assert {(d["label"], d["count"]) for d in small} == {(2, 2), (3, 2)}
    with pytest.raises(select.SelectError, match="no class named 'nobody'.*hakurei_reimu"):
        run(tmp_path / "d", classes=["nobody"])
    with pytest.raises(select.SelectError, match="class id 42"):
        run(tmp_path / "e", classes=[42])


def test_exclusion_wins_over_class_filter_and_rank_cut_hook(tmp_path):
    manifests = write_normalised(tmp_path, POSTS)
    items = select.load_items(manifests)
    table = select.read_class_table(tmp_path / "classes.tsv")
    seen = []

    def lowest_scores(remaining: pd.DataFrame) -> select.Drops:
        seen.extend(remaining["item_id"])
        return {"600_0": ("discriminator_rank", {"score": -3.2})}

    excl = select.parse_exclude(["11_0"], "x")
    drops, ds = select.select_items(items, params(classes=[1, 2]), excl, table, rank_cut=lowest_scores)
    assert drops["11_0"][0] == "excluded_by_user"  # label 2 is allowed, the exclusion still applies
    assert drops["9_0"][0] == "class_filtered"
    assert drops["600_0"] == ("discriminator_rank", {"score": -3.2})
    assert "11_0" not in seen and "9_0" not in seen and "600_0" in seen  # the hook sees only surviving items
    assert ds["item_id"].tolist() == ["10_0", "10_1", "520_0", "521_0", "600_1"]


def test_changed_or_missing_image_is_an_error(tmp_path):
    manifests = write_normalised(tmp_path, POSTS)
    img = tmp_path / "normalise" / "images" / "000" / "10_1.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    args = ([str(m) for m in manifests], str(tmp_path / "classes.tsv"), params())
    out = (tmp_path / "m.parquet", tmp_path / "d.parquet")
    with pytest.raises(select.SelectError, match="item 10_1: .*changed after normalisation"):
        select.run(*args, *out)
    img.unlink()
    with pytest.raises(select.SelectError, match="item 10_1: .*missing"):
        select.run(*args, *out)
    assert not out[0].exists() and not out[1].exists()
    # excluding the broken item makes the selection valid again
    exclude = tmp_path / "ex.txt"
    exclude.write_text("10_1\n", encoding="utf-8")
    select.run(*args[:2], params(exclude_file=str(exclude)), *out)
    assert len(pd.read_parquet(out[1])) == 8


def test_cli(tmp_path, capsys):
    manifests = write_normalised(tmp_path, POSTS)
    exclude = tmp_path / "ex.txt"
    exclude.write_text("9\n12345_0\n", encoding="utf-8")
    argv = ["--manifests", *map(str, manifests), "--classes", str(tmp_path / "classes.tsv")]
    argv += ["--manifest-out", str(tmp_path / "s" / "all.parquet"), "--dataset-out", str(tmp_path / "s" / "d.parquet")]
    code = select.main([*argv, "--params", json.dumps({"exclude_file": str(exclude)}), "--threads", "2"])
    assert code == 0
    err = capsys.readouterr().err
    assert "12345_0" in err and "9 items in, 8 selected" in err
    # what the rule passes: the run's folder and shard count name the same normalise manifests
    assert manifests == shard_manifests(tmp_path, "normalise", 2)
    named = ["--results", str(tmp_path), "--shards", "2", *argv[len(manifests) + 1 :]]
    named[named.index(str(tmp_path / "s" / "d.parquet"))] = str(tmp_path / "s" / "d2.parquet")
    assert select.main([*named, "--params", json.dumps({"exclude_file": str(exclude)})]) == 0
    assert (tmp_path / "s" / "d2.parquet").read_bytes() == (tmp_path / "s" / "d.parquet").read_bytes()
    with pytest.raises(SystemExit) as exc:  # a config error: exit 2, like argparse's usage errors
        select.main([*argv, "--params", json.dumps({"min_class_count": -1})])
    assert exc.value.code == 2
    assert "select.min_class_count" in capsys.readouterr().err


def test_nothing_kept_upstream_gives_an_empty_selection(tmp_path):
    rows = StageRows("normalise", "000")
    rows.dropped(7, "7_0", "gate_failed", {"why": "blurry"})
    write_manifest(rows.frame(), manifest_path(tmp_path, "normalise", "000"))
    out_manifest, out_dataset = tmp_path / "s" / "all.parquet", tmp_path / "s" / "d.parquet"
    select.run([str(manifest_path(tmp_path, "normalise", "000"))], None, params(), out_manifest, out_dataset)
    assert len(pd.read_parquet(out_dataset)) == 0 and len(pd.read_parquet(out_manifest)) == 0
    assert list(pd.read_parquet(out_dataset).columns) == select.DATASET_COLUMNS
