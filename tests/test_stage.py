"""The per-item stage skeleton (animefaces.stage.item_manifest) that crop, clean, normalise and select's ledger use."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from animefaces.manifest import LEDGER_COLUMNS, StageRows, write_manifest
from animefaces.stage import KeptItem, item_manifest


@dataclass
class Result:
    reason: str = ""
    details: dict = field(default_factory=dict)
    cols: dict = field(default_factory=dict)
    kept_items: list[KeptItem] | None = None


def _items(order: list[int]) -> pd.DataFrame:
    rows = StageRows("prev", "000")
    for n in order:
        rows.kept(n, str(n), str(n), path=f"/x/{n}.png", label=n % 3, shard_hint=f"00{n % 2}")
    return rows.frame().assign(shard=lambda d: d["shard_hint"]).drop(columns="shard_hint")


def _work(rec: dict) -> Result:
    n = int(rec["post_id"])
    if n % 3 == 0:
        return Result("too_small", {"n": n})
    if n % 3 == 1:
        return Result(cols={"width": n * 10})
    return Result(kept_items=[KeptItem(f"{n}_{k}", {"k": k}, {"width": k}) for k in range(2)])


def test_one_input_may_become_several_items_and_columns_do_not_depend_on_the_first_row(tmp_path):
    frames = []
    for order in ([3, 4, 5], [4, 5, 3]):  # first row dropped / kept
        frame = item_manifest(
            "stage", "000", _items(order), _work, 2, ["label"], ["width"], {"width": "Int64"}, progress=False
        )
        write_manifest(frame, tmp_path / f"{order[0]}.parquet")
        frames.append(frame.set_index("item_id").sort_index())
        assert list(frame.columns) == [*LEDGER_COLUMNS, "label", "width"]
        assert frame["width"].dtype == "Int64" and frame["label"].dtype == "Int64"
    a, b = frames
    pd.testing.assert_frame_equal(a, b)
    assert a.loc["3", "status"] == "dropped" and a.loc["3", "reason"] == "too_small" and pd.isna(a.loc["3", "label"])
    assert a.loc["4", "width"] == 40 and a.loc["4", "label"] == 1
    assert a.loc[["5_0", "5_1"], "parent_id"].tolist() == ["5", "5"] and a.loc["5_1", "width"] == 1
    assert a.loc["5_1", "details"] == '{"k": 1}'


def test_a_global_stage_keeps_each_rows_shard_and_the_columns_a_drop_keeps():
    frame = item_manifest(
        "select",
        None,
        _items([3, 4]),
        lambda rec: Result("excluded") if rec["post_id"] == 3 else Result(),
        1,
        ["path", "label"],
        [],
        {},
        kept_on_drop=("label",),
        progress=False,
    ).set_index("item_id")
    assert frame["shard"].tolist() == ["001", "000"]
    assert frame.loc["3", "label"] == 0 and pd.isna(frame.loc["3", "path"])  # dropped: label kept, path empty
    assert frame.loc["4", "path"] == "/x/4.png"
