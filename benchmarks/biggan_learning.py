"""Learning evidence for class-conditional BigGAN on a labelled real set (class folders of face crops).

    nice -n 10 .venv/bin/python benchmarks/biggan_learning.py --characters ../shared/data/faces/characters \
        --out /tmp/biggan-characters --kimg 20 --threads 1

Builds an HDF5 pack in our layout (``imgs`` N x 3 x 64 x 64 uint8, centre-cropped + Lanczos-resized; ``labels`` =
class ids 1..K in sorted folder order, 0 reserved for "unlabelled") and the matching ``classes.tsv`` (names = folder
names without a leading ``NNN_``), trains ``train.model: biggan`` (preset ``biggan-tiny``, 32 px) into
``OUT/train`` (resumes if run again, e.g. with a larger ``--kimg``), then writes the class sheets and truncation
figure (``OUT/samples``) and prints the metrics of the first and last tick as one JSON line.
Run it from the repository root (the package is imported from ./workflow).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "workflow"))

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

SIZE = 64


def square(im: Image.Image, size: int) -> np.ndarray:
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    return np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)).transpose(2, 0, 1)


def build_pack(root: Path, out: Path) -> tuple[Path, Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    imgs, labels, rows = [], [], []
    for k, folder in enumerate(folders, start=1):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
        for f in files:
            with Image.open(f) as im:
                imgs.append(square(im, SIZE))
            labels.append(k)
        rows.append((k, re.sub(r"^\d+_", "", folder.name), len(files)))
    out.mkdir(parents=True, exist_ok=True)
    pack = out / "characters.hdf5"
    with h5py.File(pack, "w") as f:
        f.create_dataset("imgs", data=np.stack(imgs), chunks=(16, 3, SIZE, SIZE))
        f["labels"] = np.asarray(labels, np.int64)
    tsv = out / "classes.tsv"
    tsv.write_text("class_id\tname\tcount\n" + "".join(f"{k}\t{n}\t{c}\n" for k, n, c in rows))
    return pack, tsv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--characters", required=True, help="folder of class folders")
    ap.add_argument("--out", required=True)
    ap.add_argument("--kimg", type=float, default=20.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="extra train.* override")
    args = ap.parse_args(argv)
    out = Path(args.out)
    pack, tsv = build_pack(Path(args.characters), out)
    n_classes = len(tsv.read_text().splitlines()) - 1
    params = {
        "model": "biggan",
        "preset": "biggan-tiny",
        "device": "cpu",
        "gpus": 0,
        "threads": args.threads,
        "kimg": args.kimg,
        "kimg_per_tick": 1.0,
        "snap": 2,
        "grid_rows": n_classes,
        "grid_cols": 8,
    }
    for item in args.set:
        key, _, value = item.partition("=")
        params[key] = json.loads(value)
    from animefaces.config import parse_params
    from animefaces.sample_classes import main as sample_main
    from animefaces.train.loop import train

    # the loop itself in OUT/train (not the workflow's runs/<n>-<hash>/ layout), so snapshots are in OUT/train
    rc = train(parse_params(json.dumps(params), "train"), str(pack), str(out / "train"))
    if rc:
        return rc
    sample = json.dumps({"sheet_seeds": list(range(8)), "truncation_seeds": list(range(n_classes))})
    net = str(out / "train" / "network-final.pt")
    rc = sample_main(["sheets", "--network", net, "--classes", str(tsv), "--outdir", str(out / "samples"),
                      "--params", sample, "--threads", str(args.threads)])  # fmt: skip
    rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    keys = ["kimg", "loss_G", "loss_D", "D_gap", "diversity_ratio", "sn_G_max", "sec_per_kimg", "time_s"]
    print(json.dumps({"first": {k: rows[0].get(k) for k in keys}, "last": {k: rows[-1].get(k) for k in keys}}))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
