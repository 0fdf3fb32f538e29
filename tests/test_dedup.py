"""Duplicate removal: the Hamming index against brute force, the survivor rule, nearest-survivor grouping,
the re-encoded fixtures (groups checked against an independent OpenCV decode) and the global CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from animefaces import clean
from animefaces.config import defaults
from animefaces.dedup import dedup_manifests, find_duplicates
from animefaces.dedup import main as dedup_main
from animefaces.dedup.hashing import as_uint64, hamming, perceptual_hash, to_int64
from animefaces.dedup.index import Plan, all_pairs, near_pairs, plan, split_bits
from animefaces.manifest import StageRows, manifest_path, read_manifest, write_manifest
from PIL import Image, ImageEnhance


def planted(n: int, t: int, seed: int, pairs: int = 60):
    """Random hashes plus pairs planted at every distance 0..t+3; returns (hashes, {(i, j): d})."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, n, dtype=np.uint64)
    plants = {}
    idx = rng.permutation(n)[: 2 * pairs].reshape(pairs, 2)
    for k, (a, b) in enumerate(idx):
        d = k % (t + 4)
        bits = rng.choice(64, size=d, replace=False)
        v = int(h[a])
        for bit in bits:
            v ^= 1 << int(bit)
        h[b] = np.uint64(v)
        plants[(min(a, b), max(a, b))] = d
    return h, plants


@pytest.mark.parametrize("t", [0, 2, 5, 8, 12])
def test_index_equals_brute_force(t):
    h, plants = planted(4000, t, seed=t)
    i, j, d = near_pairs(h, t)
    bi, bj, bd = all_pairs(h, t)
    assert np.array_equal(i, bi) and np.array_equal(j, bj) and np.array_equal(d, bd)
    found = set(zip(i.tolist(), j.tolist(), strict=True))
    for pair, dist in plants.items():
        assert (pair in found) == (dist <= t), (pair, dist)
    assert (d <= t).all()


def test_index_with_the_large_n_plan():
    """The plan chosen for 1M hashes at t=8 (3 blocks of 22/21/21 bits, radius 2), run on a small set."""
    big = plan(1_000_000, 8)
    assert big.blocks == ((42, 22), (21, 21), (0, 21)) and big.radius == 2 and big.key_bits == (22, 21, 21)
    h, plants = planted(3000, 8, seed=1)
    i, j, _ = near_pairs(h, 8, big)
    bi, bj, _ = all_pairs(h, 8)
    assert np.array_equal(i, bi) and np.array_equal(j, bj)
    assert {p for p, d in plants.items() if d <= 8} <= set(zip(i.tolist(), j.tolist(), strict=True))


def test_plans_satisfy_the_pigeonhole_condition():
    for n in (10, 10_000, 1_000_000, 100_000_000):
        for t in range(0, 20):
            p = plan(n, t)
            m = len(p.blocks)
            assert m * (p.radius + 1) > t
            covered = sorted(b for s, w in p.blocks for b in range(s, s + w))
            assert covered == list(range(64))  # the blocks partition the hash
            for (s, w), (ks, kb) in zip(p.blocks, p.keys, strict=True):
                assert p.radius < kb <= min(w, 24) and ks + kb == s + w  # a key is the top bits of its block
    assert split_bits(3) == ((42, 22), (21, 21), (0, 21))
    with pytest.raises(ValueError):
        near_pairs(np.zeros(3, np.uint64), 8, Plan(7, split_bits(8), 0))
    with pytest.raises(ValueError):
        Plan(8, split_bits(3), 2, (23, 21, 21))


def test_sub_keys_and_chunks_find_the_same_pairs():
    """Keys narrower than their blocks (small n) and query chunks smaller than n change speed, not results."""
    h, _ = planted(3000, 8, seed=5)
    want = all_pairs(h, 8)
    for p, chunk in [(Plan(8, split_bits(3), 2, (12, 10, 9)), 1000), (plan(3000, 8), 7), (plan(10**6, 8), 1 << 17)]:
        got = near_pairs(h, 8, p, chunk=chunk)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), p


def test_hash_storage_roundtrip():
    for v in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        assert int(as_uint64(np.array([to_int64(v)], dtype=np.int64))[0]) == v
    assert hamming(np.array([to_int64(2**64 - 1)]), np.array([0]))[0] == 64


def frame(rows: list[dict]) -> pd.DataFrame:
    base = {"post_id": 1, "width": 100, "height": 100, "lossless": False, "file_sha256": "", "pixel_sha256": ""}
    out = []
    for k, r in enumerate(rows):
        row = {**base, "item_id": f"{r.get('post_id', k + 1)}_0", "post_id": k + 1, **r}
        row.setdefault("pixel_sha256", f"p{k}")
        row.setdefault("file_sha256", f"f{k}")
        out.append(row)
    return pd.DataFrame(out)


def test_survivor_rule_lossless_then_resolution_then_quality_then_post_id():
    same = to_int64(0x0123456789ABCDEF)
    rows = [
        {"post_id": 5, "item_id": "5_0", "perceptual_hash": same, "width": 100, "height": 100, "lossless": True},
        {
            "post_id": 3,
            "item_id": "3_0",
            "perceptual_hash": same ^ 0b111,
            "width": 100,
            "height": 100,
            "lossless": False,
        },
        {"post_id": 9, "item_id": "9_0", "perceptual_hash": same ^ 0b1, "width": 120, "height": 100, "lossless": False},
        {"post_id": 2, "item_id": "2_1", "perceptual_hash": same, "width": 50, "height": 50, "lossless": True},
        {"post_id": 2, "item_id": "2_0", "perceptual_hash": same, "width": 50, "height": 50, "lossless": True},
    ]
    df = pd.DataFrame(rows).assign(pixel_sha256=list("abcde"), file_sha256=list("vwxyz"))
    dec = find_duplicates(df, max_distance=8)
    # lossless first: the 100x100 PNG-sourced 5_0 beats the larger 120x100 JPEG
    assert dec["status"].tolist() == ["kept", "dropped", "dropped", "dropped", "dropped"]
    assert (dec["duplicate_of"][dec["status"] == "dropped"] == 0).all()
    assert dec["distance"].tolist() == [0, 3, 1, 0, 0]
    # among the lossy ones, the larger wins
    lossy = df.iloc[[1, 2]].reset_index(drop=True)
    assert lossy["item_id"][find_duplicates(lossy, 8)["status"] == "kept"].tolist() == ["9_0"]
    # same size and losslessness, no quality columns: lower post id, then item id (order-independent)
    small = df.assign(width=50, height=50, lossless=True)
    dec = find_duplicates(small, max_distance=8)
    assert small["item_id"][dec["status"] == "kept"].tolist() == ["2_0"]
    shuffled = small.sample(frac=1, random_state=0).reset_index(drop=True)
    dec2 = find_duplicates(shuffled, max_distance=8)
    assert shuffled["item_id"][dec2["status"] == "kept"].tolist() == ["2_0"]
    # quality breaks the tie before the post id: less blocky first, then sharper
    q = small.assign(blockiness=[1.0, 1.3, 1.0, 1.0, 1.0], sharpness=[50.0, 900.0, 80.0, 10.0, 20.0])
    assert q["item_id"][find_duplicates(q, 8)["status"] == "kept"].tolist() == ["9_0"]  # 3_0 is sharper but blocky


def _jpeg_bytes(im: Image.Image, quality: int) -> bytes:
    import io

    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def test_survivor_rule_prefers_the_original_and_records_why(shared, tmp_path):
    """Real faces: an edited same-size copy with a lower post id loses to its original (lossless over lossy,
    then less blocky, then sharper), and the ledger says on which criterion."""
    src = sorted((shared / "faces" / "selfie2anime").rglob("*.*"))[3]
    im = Image.open(src).convert("RGB")
    im.save(tmp_path / "orig.png")
    (tmp_path / "q30.jpg").write_bytes(_jpeg_bytes(im, 30))
    (tmp_path / "q95.jpg").write_bytes(_jpeg_bytes(im, 95))
    blurred = im.resize((im.width // 2, im.height // 2), Image.Resampling.BILINEAR).resize(im.size)
    blurred.save(tmp_path / "blur.png")
    params = {**defaults()["clean"], "monochrome": []}
    # ids: the edits get lower post ids than the original, so the old rule (post id) would keep an edit
    order = ["q30.jpg", "blur.png", "q95.jpg", "orig.png"]
    cleaned = clean.clean_frame(_test_items([tmp_path / f for f in order], tmp_path), "000", params)
    rows = cleaned.set_index("item_id")
    assert rows.loc["1_0", "blockiness"] > rows.loc["3_0", "blockiness"] + 0.05  # q30 is blockier than q95
    assert rows.loc["4_0", "sharpness"] > 1.5 * rows.loc["2_0", "sharpness"]  # the blurred copy is softer
    out, _, _ = dedup_manifests({"000": cleaned}, defaults()["dedup"])
    res = out["000"].set_index("item_id")
    assert res["status"].to_dict() == {"1_0": "dropped", "2_0": "dropped", "3_0": "dropped", "4_0": "kept"}
    why = {i: json.loads(res.loc[i, "details"]) for i in ("1_0", "2_0", "3_0")}
    assert {i: d["duplicate_of"] for i, d in why.items()} == {"1_0": "4_0", "2_0": "4_0", "3_0": "4_0"}
    assert why["1_0"]["survivor_rule"] == "lossless" and why["3_0"]["survivor_rule"] == "lossless"
    assert why["2_0"]["survivor_rule"] == "sharper"  # both lossless, same size: the sharper one wins
    # among the two JPEGs alone (same size, both lossy), the less blocky one survives
    two = cleaned[cleaned["item_id"].isin(["1_0", "3_0"])]
    out, _, _ = dedup_manifests({"000": two}, defaults()["dedup"])
    res = out["000"].set_index("item_id")
    assert res.loc["3_0", "status"] == "kept"
    assert json.loads(res.loc["1_0", "details"])["survivor_rule"] == "less_blocky"


def test_nearest_survivor_does_not_chain():
    a = 0
    b = a ^ 0b11111  # 5 bits from a
    c = b ^ (0b11111 << 10)  # 5 bits from b, 10 from a
    df = frame(
        [
            {"perceptual_hash": a, "width": 300, "height": 300},
            {"perceptual_hash": b, "width": 200, "height": 200},
            {"perceptual_hash": c, "width": 100, "height": 100},
        ]
    )
    dec = find_duplicates(df, max_distance=8)
    assert dec["status"].tolist() == ["kept", "dropped", "kept"]  # c is 10 bits from the only survivor
    assert dec["duplicate_of"].tolist() == [-1, 0, -1]
    pairs = dec.attrs["pairs"]
    assert sorted(zip(pairs["a"], pairs["b"], pairs["distance"], strict=True)) == [(0, 1, 5), (1, 2, 5)]
    # the nearest kept neighbour wins over a better-ranked but farther one (t = 12 here)
    one = (1 << 16) - 1  # 16 bits from item 0
    two = (1 << 10) - 1  # 10 bits from item 0, 6 from item 1
    d = frame(
        [
            {"perceptual_hash": 0, "width": 300, "height": 300},
            {"perceptual_hash": one, "width": 200, "height": 200},
            {"perceptual_hash": two, "width": 100, "height": 100},
        ]
    )
    dec = find_duplicates(d, max_distance=12)
    assert dec["status"].tolist() == ["kept", "kept", "dropped"]
    assert dec["duplicate_of"].tolist() == [-1, -1, 1] and dec["distance"].tolist() == [0, 0, 6]


def test_exact_groups_by_pixels_or_file_bytes():
    df = frame(
        [
            {"perceptual_hash": 1, "pixel_sha256": "P", "file_sha256": "F1"},
            {"perceptual_hash": 1, "pixel_sha256": "P", "file_sha256": "F2"},  # re-encoding, same pixels
            {
                "perceptual_hash": 1 << 40,
                "pixel_sha256": "Q",
                "file_sha256": "F2",
            },  # same bytes as 1 (hash collision test)
            {"perceptual_hash": (2**62) | 7, "pixel_sha256": "R", "file_sha256": "F3"},
        ]
    )
    dec = find_duplicates(df, max_distance=0, near=False)
    assert dec["status"].tolist() == ["kept", "dropped", "dropped", "kept"]
    assert dec["reason"].tolist() == ["", "exact_duplicate", "exact_duplicate", ""]
    assert dec["duplicate_of"].tolist() == [-1, 0, 0, -1]


def _test_items(files, tmp_path):
    rows = StageRows("crop", "000")
    for k, path in enumerate(files):
        rows.kept(k + 1, f"{k + 1}_0", str(k + 1), path=str(path), source_path=str(path), source_ext=path.suffix[1:])
    return rows.frame()


def _independent_rgb(path) -> np.ndarray:
    """Decoded pixels via OpenCV (no colour management), alpha composited onto white by hand."""
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        a = np.asarray(Image.open(path).convert("RGBA"))[:, :, [2, 1, 0, 3]]
    if a.ndim == 2:
        a = np.stack([a, a, a], axis=2)
    if a.shape[2] == 4:
        alpha = a[:, :, 3:].astype(np.float64) / 255
        a = np.rint(a[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return a


def test_danbooru_reencodings_grouped(shared, tmp_path):
    files = sorted((shared / "robustness" / "danbooru_test_files" / "dupes").glob("countergirl*"))
    assert len(files) == 16
    params = {**defaults()["clean"], "min_size": 16, "monochrome": []}
    cleaned = clean.clean_frame(_test_items(files, tmp_path), "000", params)
    assert (cleaned["status"] == "kept").all()
    # luminance hashes only (the seed's behaviour): the colour-managed variants join their stored-pixel twins
    out, pairs, summary = dedup_manifests({"000": cleaned}, {**defaults()["dedup"], "colour_check": False})
    res = out["000"].set_index("item_id")
    name = {f"{k + 1}_0": f.name for k, f in enumerate(files)}

    # independent pixel equality (OpenCV, no ICC): groups of identical stored pixels
    ref = {}
    for k, f in enumerate(files):
        px = _independent_rgb(f)
        ref.setdefault((px.shape, px.tobytes()), []).append(f"{k + 1}_0")
    ref_group = {item: tuple(g) for g in ref.values() for item in g}
    tagged = {"countergirl-adobergb.jpg", "countergirl-p3.jpg", "countergirl-prophoto.jpg"}  # wide-gamut ICC

    def twin(item):  # the exact-group representative our dedup chose (itself if it survived the exact step)
        det = json.loads(res.loc[item, "details"])
        if res.loc[item, "reason"] == "exact_duplicate":
            return det.get("identical_to", det["duplicate_of"])
        return item

    for item in res.index:
        if name[item] in tagged:
            continue
        same_ref = {o for o in ref_group[item] if name[o] not in tagged}
        same_ours = {o for o in res.index if name[o] not in tagged and twin(o) == twin(item)}
        assert same_ours == same_ref, (name[item], sorted(name[o] for o in same_ours))

    # the colour-managed ones have the baseline's stored pixels but other colours: near, not exact, duplicates
    def survivor(item):
        return item if res.loc[item, "status"] == "kept" else json.loads(res.loc[item, "details"])["duplicate_of"]

    for item in res.index:
        if name[item] in tagged:
            assert res.loc[item, "reason"] in ("", "near_duplicate"), name[item]
            assert len({survivor(o) for o in ref_group[item]}) == 1  # same cluster as the stored-pixel twins
    # one survivor per background (the JPEGs were flattened onto black, the PNG/GIFs keep white/alpha)
    kept = res.index[res["status"] == "kept"].tolist()
    backgrounds = {tuple(_independent_rgb(files[int(i.split("_")[0]) - 1])[0, 0]) for i in kept}
    assert len(kept) == 2 and backgrounds == {(0, 0, 0), (255, 255, 255)}
    for item in res.index[res["status"] == "dropped"]:
        det = json.loads(res.loc[item, "details"])
        assert det["duplicate_of"] in kept and 0 <= det["distance"] <= 8
    assert summary["exact_duplicate"] + summary["near_duplicate"] == 14
    assert set(pairs["kind"]) == {"exact", "near"} and (pairs["distance"] <= 8).all()

    # with the colour verification (default): the wide-gamut copies (ProPhoto / P3 / Adobe RGB -> sRGB shift the
    # colours globally) are recolourings of one picture and merge with their stored-pixel twins; the grey PNG is
    # drained of colour and stays apart from the colour PNG; every near pair is within the residual limit
    limit = defaults()["dedup"]["max_colour_residual"]
    out, pairs, summary = dedup_manifests({"000": cleaned}, defaults()["dedup"])
    res = out["000"].set_index("item_id")
    status = {name[i]: res.loc[i, "status"] for i in res.index}
    black = {survivor(i) for i in res.index if name[i] in tagged or name[i] == "countergirl-baseline.jpg"}
    assert len(black) == 1
    assert status["countergirl-grey-srgb.png"] == "kept" and status["countergirl-no-exif.png"] == "kept"
    assert summary["colour_differs"] == 1 and sorted(status.values()).count("kept") == 3
    near = pairs[pairs["kind"] == "near"]
    assert (near["colour_residual"] <= limit).all()
    rejected = pairs[pairs["kind"] == "colour_differs"]
    assert {name[rejected["item_a"].iloc[0]], name[rejected["item_b"].iloc[0]]} == {
        "countergirl-no-exif.png",
        "countergirl-grey-srgb.png",
    }


def test_byte_identical_illustrations_one_kept(shared, tmp_path):
    d = shared / "illustrations" / "jonathonyan_detection_samples"
    files = sorted(d.glob("*.jpg"))
    assert (d / "detect_07.jpg").read_bytes() == (d / "sample2.jpg").read_bytes()
    cleaned = clean.clean_frame(_test_items(files, tmp_path), "000", defaults()["clean"], threads=2)
    out, _, _ = dedup_manifests({"000": cleaned}, defaults()["dedup"])
    res = out["000"]
    by_name = {f.name: f"{k + 1}_0" for k, f in enumerate(files)}
    a, b = by_name["detect_07.jpg"], by_name["sample2.jpg"]
    row_b = res[res["item_id"] == b].iloc[0]
    assert res[res["item_id"] == a]["status"].iloc[0] == "kept"
    assert row_b["reason"] == "exact_duplicate" and json.loads(row_b["details"])["duplicate_of"] == a
    assert (res["status"] == "kept").sum() == len(files) - 1
    # detect_08.jpg holds PNG data: its source counts as lossless
    kept = cleaned.set_index("item_id")
    assert kept.loc[by_name["detect_08.jpg"], "source_format"] == "PNG"
    assert bool(kept.loc[by_name["detect_08.jpg"], "lossless"])


def test_cli_dedups_across_shards(tmp_path):
    """Two shards; a picture in shard 000 re-encoded (JPEG) in shard 001, plus a resized copy: the global job
    keeps one and writes a manifest for every shard and the pairs table."""
    rng = np.random.default_rng(3)
    base = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (96, 96), interpolation=cv2.INTER_CUBIC)
    other = cv2.resize(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), (96, 96), interpolation=cv2.INTER_CUBIC)
    imgs = tmp_path / "crops"
    imgs.mkdir()
    Image.fromarray(base).save(imgs / "10_0.png")
    Image.fromarray(base).save(imgs / "11_0.jpg", quality=85)
    Image.fromarray(base).resize((80, 80), Image.Resampling.LANCZOS).save(imgs / "21_0.png")
    Image.fromarray(base).save(imgs / "23_0.png")  # byte-identical re-save, other shard
    Image.fromarray(other).save(imgs / "25_0.png")
    res = tmp_path / "res"
    params = json.dumps({"min_size": 16, "monochrome": []})
    for shard, names in {"000": ["10_0.png", "11_0.jpg"], "001": ["21_0.png", "23_0.png", "25_0.png"]}.items():
        rows = StageRows("crop", shard)
        for n in names:
            post = int(n.split("_")[0])
            rows.kept(post, n.split(".")[0], str(post), path=str(imgs / n), source_ext=n.split(".")[1])
        write_manifest(rows.frame(), manifest_path(res, "crop", shard))
        assert (
            clean.main(
                ["--input", str(manifest_path(res, "crop", shard)), "--output", str(manifest_path(res, "clean", shard))]
                + ["--params", params]
            )
            == 0
        )
    outs = [str(manifest_path(res, "dedup", s)) for s in ("000", "001")]
    ins = [str(manifest_path(res, "clean", s)) for s in ("000", "001")]
    assert dedup_main(["--inputs", *ins, "--outputs", *outs, "--pairs", str(res / "dedup" / "pairs.parquet")]) == 0
    allrows = pd.concat([read_manifest(p) for p in outs]).set_index("item_id")
    assert allrows.loc["10_0", "status"] == "kept" and allrows.loc["25_0", "status"] == "kept"
    assert allrows.loc["23_0", "reason"] == "exact_duplicate"  # same pixels as 10_0, other shard
    assert allrows.loc["11_0", "reason"] == "near_duplicate"  # lossy re-encoding
    assert allrows.loc["21_0", "reason"] == "near_duplicate"  # smaller copy: the larger one survives
    assert allrows.loc["11_0", "shard"] == "000" and allrows.loc["21_0", "shard"] == "001"
    pairs = pd.read_parquet(res / "dedup" / "pairs.parquet")
    assert set(pairs["dropped"]) == {"11_0", "21_0", "23_0"}
    assert perceptual_hash(base) == allrows.loc["10_0", "perceptual_hash"]
    with pytest.raises(SystemExit):
        dedup_main(["--inputs", *ins, "--outputs", outs[0], "--pairs", str(tmp_path / "p.parquet")])
    # what the rule passes: the run's shards, not its file lists; the same manifests and pairs
    listed = {p: Path(p).read_bytes() for p in [*outs, str(res / "dedup" / "pairs.parquet")]}
    for p in listed:
        Path(p).unlink()
    assert dedup_main(["--results", str(res), "--shards", "2", "--pairs", str(res / "dedup" / "pairs.parquet")]) == 0
    assert {p: Path(p).read_bytes() for p in listed} == listed
    for bad in (["--results", str(res)], ["--results", str(res), "--shards", "2", "--inputs", *ins]):
        with pytest.raises(SystemExit) as exc:
            dedup_main([*bad, "--pairs", str(tmp_path / "p.parquet")])
        assert exc.value.code == 2
    with pytest.raises(FileNotFoundError, match="002.parquet"):  # a shard the run does not have
        dedup_main(["--results", str(res), "--shards", "3", "--pairs", str(tmp_path / "p.parquet")])


def test_colour_variants_of_one_line_art(tmp_path):
    """Same drawing, other background colour of similar luminance: the luminance hash cannot tell them apart,
    the colour check keeps both; without it (the seed's behaviour) one is a near duplicate."""
    from PIL import ImageDraw

    def draw(bg):
        im = Image.new("RGB", (128, 128), bg)
        d = ImageDraw.Draw(im)
        d.ellipse((24, 20, 104, 110), fill=(250, 220, 200), outline=(0, 0, 0), width=3)
        d.ellipse((44, 52, 58, 66), fill=(30, 30, 30))
        d.ellipse((70, 52, 84, 66), fill=(30, 30, 30))
        d.arc((50, 70, 78, 95), 20, 160, fill=(0, 0, 0), width=3)
        return im

    for name, bg in {"1_0": (200, 120, 120), "2_0": (110, 160, 150), "3_0": (200, 120, 120)}.items():
        draw(bg).save(tmp_path / f"{name}.png")
    Image.open(tmp_path / "3_0.png").resize((100, 100), Image.Resampling.LANCZOS).save(tmp_path / "3_0.png")
    files = [tmp_path / f"{k}_0.png" for k in (1, 2, 3)]
    params = {**defaults()["clean"], "monochrome": []}
    cleaned = clean.clean_frame(_test_items(files, tmp_path), "000", params)
    kept = cleaned.set_index("item_id")
    assert (
        hamming([kept.loc["1_0", "perceptual_hash"]], [kept.loc["2_0", "perceptual_hash"]])[0] <= 8
    )  # the hash sees one picture
    out, pairs, _ = dedup_manifests({"000": cleaned}, defaults()["dedup"])
    status = out["000"].set_index("item_id")["status"].to_dict()
    assert status == {"1_0": "kept", "2_0": "kept", "3_0": "dropped"}  # the resized copy is still a duplicate
    assert set(pairs["kind"]) == {"near", "colour_differs"}
    out, _, _ = dedup_manifests({"000": cleaned}, {**defaults()["dedup"], "colour_check": False})
    assert out["000"].set_index("item_id")["status"].tolist() == ["kept", "dropped", "dropped"]


def _hue_shift(im: Image.Image, degrees: float) -> Image.Image:
    h, s, v = im.convert("HSV").split()
    shift = round(degrees * 256 / 360)
    return Image.merge("HSV", (h.point(lambda x: (x + shift) % 256), s, v)).convert("RGB")


def _crop(im: Image.Image, frac: float) -> Image.Image:
    c = max(1, round(frac * im.width))
    return im.crop((c, c, im.width - c, im.height - c))


EDITS = {
    "brightness +10%": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "brightness -10%": lambda im: ImageEnhance.Brightness(im).enhance(0.9),
    "contrast +20%": lambda im: ImageEnhance.Contrast(im).enhance(1.2),
    "contrast -20%": lambda im: ImageEnhance.Contrast(im).enhance(0.8),
    "gamma 0.8": lambda im: im.point(lambda x: round(255 * (x / 255) ** 0.8)),
    "gamma 1.25": lambda im: im.point(lambda x: round(255 * (x / 255) ** 1.25)),
    "hue +15": lambda im: _hue_shift(im, 15),
    "hue -15": lambda im: _hue_shift(im, -15),
    "jpeg q=50": lambda im: Image.open(__import__("io").BytesIO(_jpeg_bytes(im, 50))).convert("RGB"),
    "resize 0.5x": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.LANCZOS),
    "resize 2x": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.LANCZOS),
    "crop 2%": lambda im: _crop(im, 0.02),
    "crop 3%": lambda im: _crop(im, 0.03),
}


def _faces(shared, n: int = 2) -> list[Image.Image]:
    out = []
    for sub in ("getchu", "characters", "selfie2anime"):
        files = sorted(p for p in (shared / "faces" / sub).rglob("*") if p.is_file())
        out += [Image.open(p).convert("RGB") for p in files[:: len(files) // n][:n]]
    return out


def _sig_frame(images: list[Image.Image]) -> pd.DataFrame:
    from animefaces.dedup.hashing import colour_thumb

    rows = []
    for k, im in enumerate(images):
        rgb = np.asarray(im)
        rows.append(
            {
                "post_id": k + 1,
                "item_id": f"{k + 1}_0",
                "perceptual_hash": perceptual_hash(rgb),
                "colour_thumb": colour_thumb(rgb),
                "width": im.width,
                "height": im.height,
                "lossless": True,
                "pixel_sha256": f"p{k}",
                "file_sha256": f"f{k}",
            }
        )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_edited_copies_merge_with_their_original(shared, edit):
    """Each planted edit kind of real faces (getchu 64 px, character crops, selfie2anime 256 px) is a near
    duplicate of its original under the default dedup settings (hash candidate + colour verification)."""
    cfg = defaults()["dedup"]
    for face in _faces(shared):
        df = _sig_frame([face, EDITS[edit](face)])
        dec = find_duplicates(df, int(cfg["max_distance"]), True, float(cfg["max_colour_residual"]))
        assert dec["reason"].tolist() == ["", "near_duplicate"] or dec["reason"].tolist() == ["near_duplicate", ""], (
            edit,
            dec.attrs["pairs"],
        )


def test_mirrors_and_distinct_faces_do_not_merge(shared):
    cfg = defaults()["dedup"]
    faces = _faces(shared, 4)
    mirrors = [f.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for f in faces]
    dec = find_duplicates(
        _sig_frame(faces + mirrors), int(cfg["max_distance"]), True, float(cfg["max_colour_residual"])
    )
    assert (dec["status"] == "kept").all(), dec.attrs["pairs"]
    # the verification itself rejects a mirror even when the hashes are forced to collide
    forced = _sig_frame([faces[0], mirrors[0]]).assign(perceptual_hash=0)
    dec = find_duplicates(forced, int(cfg["max_distance"]), True, float(cfg["max_colour_residual"]))
    assert (dec["status"] == "kept").all() and dec.attrs["pairs"]["kind"].tolist() == ["colour_differs"]
