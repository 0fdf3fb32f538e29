"""Global duplicate removal over every shard's clean manifest: exact duplicates, then near duplicates.

1. Exact: items with the same decoded-pixel SHA-256 (re-encodings with identical pixels) or the same file SHA-256
   are one group (connected components over both keys); the group's best item survives.
2. Near: among the exact survivors, all pairs whose 64-bit perceptual hashes are within ``max_distance`` bits
   (:func:`animefaces.dedup.index.near_pairs`, sub-quadratic). Grouping is **nearest-survivor**, not transitive:
   items are visited best first; an item is dropped when an already-kept item lies within ``max_distance``, as a
   duplicate of the nearest such item (ties: the better one), else it is kept. So every dropped item is within
   ``max_distance`` of its survivor, and chains (A~B~C with A, C far apart) cannot merge unrelated pictures.
   Verification (``dedup.colour_check``): perceptual hashes see luminance only, so a hash-near pair must also be
   the same picture in colour: its 16 x 16 colour thumbnails must agree within ``max_colour_residual`` levels after
   the best *global* colour transform (brightness, contrast, gamma, hue shift, saturation) and a small-crop
   alignment (:func:`animefaces.dedup.hashing.colour_residual`); a mirror, or a copy drained of colour, is not the
   same picture. Recoloured copies merge; colour variants of one line art (other hair, clothes, background) do
   not, because no global transform maps one onto the other.

"Best" (the survivor rule, deterministic; ``SURVIVOR_RULE``): lossless source over lossy, then larger resolution
(w * h), then fewer JPEG block edges (``blockiness`` rounded to 0.1), then sharper (``sharpness``, Laplacian
variance), then lowest post id, then item id. Each dropped row's ``survivor_rule`` detail names the first of these
on which its survivor wins.

Every dropped row records ``duplicate_of`` (the kept item it duplicates; an exact duplicate of an item that was
itself dropped as a near duplicate points at the final survivor, with ``identical_to`` naming the exact twin) and
``distance`` (Hamming distance of the perceptual hashes). ``pairs.parquet`` lists every pair found.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..columns import carried_dtypes, int_or_none, na_columns, with_dtypes
from ..config import fill_defaults
from ..manifest import DROPPED, KEPT, LEDGER_COLUMNS, StageRows
from ..progress import track
from .hashing import as_uint64, colour_residual, same_picture
from .index import near_pairs

STAGE = "dedup"
EXACT = "exact_duplicate"
NEAR = "near_duplicate"
REQUIRED = ["item_id", "post_id", "width", "height", "lossless", "pixel_sha256", "file_sha256", "perceptual_hash"]
PAIR_COLUMNS = [
    "kind",
    "distance",
    "item_a",
    "item_b",
    "shard_a",
    "shard_b",
    "path_a",
    "path_b",
    "dropped",
    "colour_residual",
]
# the survivor rule, in order: (detail name, column, better direction); see priority_keys
SURVIVOR_RULE = [
    ("lossless", "lossless", "high"),
    ("larger", "area", "high"),
    ("less_blocky", "blockiness", "low"),
    ("sharper", "sharpness", "high"),
    ("lower_post_id", "post_id", "low"),
    ("lower_item_id", "item_id", "low"),
]


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (the smallest member index) of each of ``n`` nodes given undirected edges ``a[k]-b[k]``.

    Vectorised label propagation with pointer jumping; converges in a few rounds for the star-shaped edge sets
    built here."""
    labels = np.arange(n, dtype=np.int64)
    if len(a) == 0:
        return labels
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    while True:
        la, lb = labels[a], labels[b]
        low = np.minimum(la, lb)
        new = labels.copy()
        np.minimum.at(new, la, low)
        np.minimum.at(new, lb, low)
        new = new[new]  # pointer jumping
        while True:
            nxt = new[new]
            if np.array_equal(nxt, new):
                break
            new = nxt
        if np.array_equal(new, labels):
            return labels
        labels = new


def priority_keys(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """The survivor rule's sort keys per row, each oriented so that smaller is better (missing quality columns,
    as in hand-built frames, count as ties)."""
    n = len(df)
    area = df["width"].astype("int64").to_numpy() * df["height"].astype("int64").to_numpy()
    lossy = (~df["lossless"].astype(bool)).to_numpy().astype(np.int8)

    def quality(col: str, sign: float, decimals: int) -> np.ndarray:
        if col not in df.columns:
            return np.zeros(n)
        v = pd.to_numeric(df[col], errors="coerce").astype("float64").fillna(np.inf * sign).to_numpy()
        return sign * np.round(v, decimals)

    return {
        "lossless": lossy,
        "area": -area,
        "blockiness": quality("blockiness", 1.0, 1),
        "sharpness": quality("sharpness", -1.0, 1),
        "post_id": df["post_id"].astype("Int64").fillna(np.iinfo(np.int64).max).astype("int64").to_numpy(),
        "item_id": df["item_id"].astype(str).to_numpy(),
    }


def priority_rank(df: pd.DataFrame) -> np.ndarray:
    """Rank of each row under the survivor rule (0 = best): lossless first, larger w*h, less blocky, sharper,
    lower post id, item id."""
    keys = priority_keys(df)
    order = np.lexsort(tuple(keys[col] for _, col, _ in reversed(SURVIVOR_RULE)))
    rank = np.empty(len(df), dtype=np.int64)
    rank[order] = np.arange(len(df))
    return rank


def survivor_reason(keys: dict[str, np.ndarray], survivor: int, dropped: int) -> str:
    """The first survivor-rule criterion on which row ``survivor`` beats row ``dropped``."""
    for name, col, _ in SURVIVOR_RULE:
        if keys[col][survivor] != keys[col][dropped]:
            return name
    return "identical"


def _key_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges from every item to the first item sharing its key (empty keys never match)."""
    codes, uniques = pd.factorize(pd.Series(keys, dtype="string"), use_na_sentinel=True)
    valid = codes >= 0
    if len(uniques):
        empty = np.flatnonzero(pd.Index(uniques).astype(str) == "")
        if len(empty):
            valid &= codes != empty[0]
    idx = np.flatnonzero(valid)
    first = np.full(len(uniques), -1, dtype=np.int64)
    # first occurrence of each code: assign in reverse so the earliest index wins
    first[codes[idx][::-1]] = idx[::-1]
    a = idx
    b = first[codes[idx]]
    keep = a != b
    return a[keep], b[keep]


def find_duplicates(
    df: pd.DataFrame, max_distance: int, near: bool | None = None, max_colour_residual: float | None = None
) -> pd.DataFrame:
    """Decide every row of ``df`` (the kept clean rows of all shards); ``near`` left out: ``dedup.near``'s default.

    ``max_colour_residual``: when set, a hash-near pair only counts if its colour thumbnails (``colour_thumb``)
    pass :func:`animefaces.dedup.hashing.same_picture` with this limit; other pairs are reported with kind
    ``colour_differs`` and kept.

    Returns a frame aligned with ``df`` with columns ``status``, ``reason``, ``duplicate_of`` (row index of the
    survivor or -1), ``identical_to`` (row index of the exact twin that survived the exact step, or -1),
    ``distance``, plus ``pairs``: a frame of (a, b, distance, kind, colour_diff) row-index pairs in ``attrs``.
    """
    n = len(df)
    rank = priority_rank(df)
    hashes = as_uint64(df["perceptual_hash"].astype("int64").to_numpy())

    # 1. exact groups over both keys; the best-ranked member of each component survives
    ea, eb = [], []
    for col in ("pixel_sha256", "file_sha256"):
        a, b = _key_edges(df[col].fillna("").astype(str).to_numpy())
        ea.append(a)
        eb.append(b)
    comp = connected_components(n, np.concatenate(ea), np.concatenate(eb))
    best_of_comp: dict[int, int] = {}
    for idx in np.argsort(rank, kind="stable"):
        best_of_comp.setdefault(int(comp[idx]), int(idx))
    exact_rep = np.array([best_of_comp[int(c)] for c in comp], dtype=np.int64)
    is_rep = exact_rep == np.arange(n)

    # 2. near duplicates among the exact survivors: nearest kept neighbour in priority order
    reps = np.flatnonzero(is_rep)
    near_of = np.full(n, -1, dtype=np.int64)
    near_dist = np.zeros(n, dtype=np.int64)
    pair_a, pair_b, pair_d = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    pair_c = np.zeros(0)
    rej_a, rej_b, rej_d, rej_c = pair_a, pair_b, pair_d, pair_c
    if near is None:
        near = fill_defaults({}, "dedup")["near"]
    if near and len(reps) > 1:
        i, j, d = near_pairs(hashes[reps], max_distance)
        gi, gj = reps[i], reps[j]
        better_first = rank[gi] < rank[gj]
        pair_a = np.where(better_first, gi, gj)  # a: the better item of the pair
        pair_b = np.where(better_first, gj, gi)
        pair_d = d
        if max_colour_residual is not None:
            if "colour_thumb" not in df.columns or df["colour_thumb"].isna().any():
                raise ValueError("the colour check needs colour_thumb from the clean stage: rerun clean")
            thumbs = df["colour_thumb"].astype(str).to_numpy()
            pair_c, mirrored, chroma = colour_residual(thumbs[pair_a], thumbs[pair_b])
            ok = same_picture(pair_c, mirrored, chroma, max_colour_residual)
            rej_a, rej_b, rej_d, rej_c = pair_a[~ok], pair_b[~ok], pair_d[~ok], pair_c[~ok]
            pair_a, pair_b, pair_d, pair_c = pair_a[ok], pair_b[ok], pair_d[ok], pair_c[ok]
        else:
            pair_c = np.full(len(pair_a), np.nan)
        # visit the worse item of each pair in priority order; its better neighbours are already decided
        order = np.lexsort((rank[pair_a], pair_d, rank[pair_b]))
        for k in order:
            a, b = int(pair_a[k]), int(pair_b[k])
            if near_of[b] >= 0 or near_of[a] >= 0:
                continue  # b already matched (a nearer survivor came first) or a is itself dropped
            near_of[b] = a
            near_dist[b] = int(pair_d[k])

    status = np.full(n, KEPT, dtype=object)
    reason = np.full(n, "", dtype=object)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    identical_to = np.full(n, -1, dtype=np.int64)
    distance = np.zeros(n, dtype=np.int64)
    for idx in range(n):
        rep = int(exact_rep[idx])
        final = rep if near_of[rep] < 0 else int(near_of[rep])
        if idx != rep:
            status[idx], reason[idx] = DROPPED, EXACT
            duplicate_of[idx] = final
            if final != rep:
                identical_to[idx] = rep
        elif near_of[idx] >= 0:
            status[idx], reason[idx] = DROPPED, NEAR
            duplicate_of[idx] = final
        if duplicate_of[idx] >= 0:
            distance[idx] = int(np.bitwise_count(hashes[idx] ^ hashes[duplicate_of[idx]]))
    out = pd.DataFrame(
        {
            "status": status,
            "reason": reason,
            "duplicate_of": duplicate_of,
            "identical_to": identical_to,
            "distance": distance,
        },
        index=df.index,
    )
    ex = np.flatnonzero(~is_rep)
    pairs = pd.DataFrame(
        {
            "a": np.concatenate([exact_rep[ex], pair_a, rej_a]),
            "b": np.concatenate([ex, pair_b, rej_b]),
            "distance": np.concatenate(
                [np.bitwise_count(hashes[exact_rep[ex]] ^ hashes[ex]).astype(np.int64), pair_d, rej_d]
            ),
            "kind": ["exact"] * len(ex) + ["near"] * len(pair_a) + ["colour_differs"] * len(rej_a),
            "colour_residual": np.concatenate([np.zeros(len(ex)), pair_c, rej_c]),
        }
    )
    out.attrs["pairs"] = pairs
    return out


def dedup_manifests(
    frames: dict[str, pd.DataFrame], params: dict
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, dict]:
    """Dedup the kept rows of every shard's clean manifest (``{shard: manifest}``) globally.

    Returns ``({shard: dedup manifest}, pairs table, summary)``."""
    params = fill_defaults(params, "dedup")
    parts = []
    for shard, frame in frames.items():
        missing = [c for c in REQUIRED if c not in frame.columns and len(frame)]
        if missing and (frame["status"] == KEPT).any():
            raise ValueError(
                f"clean manifest of shard {shard} lacks columns {missing}: rerun the clean stage (animefaces.clean)"
            )
        kept = frame[frame["status"] == KEPT].copy()
        kept["_shard"] = shard
        if len(kept):  # an empty frame's object columns would upcast the typed ones in concat
            parts.append(kept)
    allk = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*LEDGER_COLUMNS, "_shard"])
    if len(allk):
        methods = sorted(set(allk.get("perceptual_hash_method", pd.Series([params["hash"]])).dropna().astype(str)))
        if methods != [params["hash"]]:
            raise ValueError(
                f"clean manifests hold perceptual hashes {methods} but dedup.hash is {params['hash']!r}: "
                "rerun clean for every shard"
            )
        dup = allk["item_id"][allk["item_id"].duplicated()]
        if len(dup):
            raise ValueError(f"item id {dup.iloc[0]!r} is kept in more than one clean manifest")
    colour = float(params["max_colour_residual"]) if params["colour_check"] else None
    decision = (
        find_duplicates(allk, int(params["max_distance"]), bool(params["near"]), colour)
        if len(allk)
        else pd.DataFrame(columns=["status", "reason", "duplicate_of", "identical_to", "distance"])
    )
    items = allk["item_id"].astype(str).to_numpy() if len(allk) else np.array([], dtype=object)

    rows = {shard: StageRows(STAGE, shard) for shard in frames}
    carry = [c for c in allk.columns if c not in LEDGER_COLUMNS and c != "_shard"]
    empty = na_columns(carry)
    status = decision["status"].to_numpy()
    reason = decision["reason"].to_numpy()
    dup_of = decision["duplicate_of"].to_numpy()
    twin = decision["identical_to"].to_numpy()
    dist = decision["distance"].to_numpy()
    keys = priority_keys(allk) if len(allk) else {}
    records = allk.to_dict(orient="records")
    for idx, rec in enumerate(track(records, "dedup ledger", len(records), "items")):
        post_id = int_or_none(rec["post_id"])
        item = str(rec["item_id"])
        target = rows[rec["_shard"]]
        if status[idx] == KEPT:
            target.kept(post_id, item, item, **{c: rec[c] for c in carry})
        else:
            details = {
                "duplicate_of": items[int(dup_of[idx])],
                "distance": int(dist[idx]),
                "survivor_rule": survivor_reason(keys, int(dup_of[idx]), idx),
            }
            if int(twin[idx]) >= 0:
                details["identical_to"] = items[int(twin[idx])]
            target.dropped(post_id, item, str(reason[idx]), details, **empty)
    dtypes = carried_dtypes(allk, carry)
    out = {shard: with_dtypes(r.frame(extra_columns=carry), dtypes) for shard, r in rows.items()}

    pairs = decision.attrs.get("pairs") if len(allk) else None
    if pairs is None or not len(pairs):
        kinds = {"distance": "int64", "colour_residual": "float64"}
        pairs_df = pd.DataFrame({c: pd.Series(dtype=kinds.get(c, "string")) for c in PAIR_COLUMNS})
    else:
        a = pairs["a"].to_numpy()
        b = pairs["b"].to_numpy()
        path = allk["path"].astype(str).to_numpy() if "path" in allk else np.full(len(allk), "", dtype=object)
        shard = allk["_shard"].astype(str).to_numpy()
        dropped_mask_a = (decision["status"].to_numpy() == DROPPED)[a]
        dropped_mask_b = (decision["status"].to_numpy() == DROPPED)[b]
        dropped = np.where(dropped_mask_b, items[b], np.where(dropped_mask_a, items[a], ""))
        pairs_df = pd.DataFrame(
            {
                "kind": pairs["kind"].astype("string"),
                "distance": pairs["distance"].astype("int64"),
                "item_a": pd.array(items[a], dtype="string"),
                "item_b": pd.array(items[b], dtype="string"),
                "shard_a": pd.array(shard[a], dtype="string"),
                "shard_b": pd.array(shard[b], dtype="string"),
                "path_a": pd.array(path[a], dtype="string"),
                "path_b": pd.array(path[b], dtype="string"),
                "dropped": pd.array(dropped, dtype="string"),
                "colour_residual": pairs["colour_residual"].astype("float64").round(2),
            }
        ).sort_values(["kind", "distance", "item_a", "item_b"], ignore_index=True)
    n_exact = int((decision["reason"] == EXACT).sum()) if len(allk) else 0
    n_near = int((decision["reason"] == NEAR).sum()) if len(allk) else 0
    summary = {
        "items": len(allk),
        "kept": len(allk) - n_exact - n_near,
        EXACT: n_exact,
        NEAR: n_near,
        "pairs": len(pairs_df),
        "colour_differs": int((pairs_df["kind"] == "colour_differs").sum()) if len(pairs_df) else 0,
        "max_distance": int(params["max_distance"]),
    }
    return out, pairs_df, summary
