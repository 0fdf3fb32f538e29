"""Dataset-aware training runs: the same pack resumes its run, a changed pack starts a new one (never a mix)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from animefaces.train import checkpoint as ckpt
from animefaces.train import main as train_main
from animefaces.train.loop import EXIT_INTERRUPTED
from animefaces.train.runs import choose_run, latest_run, list_runs, pack_identity
from test_train_fixtures import TINY, blob_images, write_h5


def run_cli(pack: Path, out: Path, *extra: str, **over) -> int:
    return train_main(["--data", str(pack), "--outdir", str(out), "--params", json.dumps({**TINY, **over}), *extra])


def final_weights(path: Path) -> dict:
    return ckpt.load_file(path)["G_ema"]


def test_changed_pack_starts_a_new_run_keeps_the_old_and_never_mixes(tmp_path, capsys):
    images, labels = blob_images(24, 32), np.arange(24) % 3
    full = write_h5(tmp_path / "full.hdf5", images, labels)
    out = tmp_path / "train"
    assert run_cli(full, out) == 0
    first = latest_run(out)
    assert first is not None and first.name.startswith("001-")
    old_final = final_weights(out / "network-final.pt")
    assert "new run (first run)" in capsys.readouterr().out

    # the user excluded 8 images: a smaller pack. The rerun must train on it from scratch, not "resume" the old run
    shrunk = write_h5(tmp_path / "shrunk.hdf5", images[8:], labels[8:])
    assert run_cli(shrunk, out) == 0
    log = capsys.readouterr().out
    assert "new run (the pack changed since run 001-" in log and "24 images -> sha256" in log and "16 images" in log
    assert "resumed from" not in log
    second = latest_run(out)
    assert second.name.startswith("002-") and second != first
    card = json.loads((second / "run.json").read_text())
    assert card["dataset"]["count"] == 16 and card["dataset"]["sha256"] == pack_identity(shrunk)["sha256"]
    assert card["previous"] == first.name
    assert first.is_dir() and ckpt.list_snapshots(first / "snapshots")  # the old run is kept
    new_final = final_weights(out / "network-final.pt")
    assert any(not torch.equal(old_final[k], new_final[k]) for k in old_final)
    assert ckpt.load_file(out / "network-final.pt")["dataset"]["path"] == str(shrunk)

    # the original pack again (the user reverted the exclusion): its finished run is found, nothing retrains
    assert run_cli(full, out) == 0
    log = capsys.readouterr().out
    assert f"run {first.name}: resuming (same pack" in log
    assert latest_run(out) == first
    assert [r.number for r in list_runs(out)] == [1, 2]
    back = final_weights(out / "network-final.pt")
    assert all(torch.equal(old_final[k], back[k]) for k in old_final)


def test_pack_shrinking_while_a_run_is_interrupted_does_not_crash(tmp_path, capsys):
    images, labels = blob_images(24, 32), np.zeros(24)
    full = write_h5(tmp_path / "a.hdf5", images, labels)
    out = tmp_path / "train"
    assert run_cli(full, out, "--stop-after-steps", "5") == EXIT_INTERRUPTED
    interrupted = latest_run(out)
    # the pack is rebuilt smaller at the same path while the run is stopped (the old code resumed and hit IndexError)
    write_h5(full, images[:6], labels[:6])
    os.utime(full)
    assert run_cli(full, out) == 0
    log = capsys.readouterr().out
    assert "the pack changed since run" in log and "6 images" in log
    assert latest_run(out) != interrupted and interrupted.is_dir()


def test_init_from_previous_transfers_only_into_a_new_run(tmp_path, capsys):
    images = blob_images(24, 32)
    a = write_h5(tmp_path / "a.hdf5", images, np.zeros(24))
    b = write_h5(tmp_path / "b.hdf5", images[4:], np.zeros(20))
    out = tmp_path / "train"
    assert run_cli(a, out, init_from="previous") != 0  # nothing to transfer from yet: a clear error
    assert "no previous run" in capsys.readouterr().err
    assert not (out / "runs").exists() and not (out / "latest").exists()  # refused before creating anything
    assert run_cli(a, out) == 0
    assert run_cli(b, out, init_from="previous") == 0
    log = capsys.readouterr().out
    assert "init_from: previous -> transfer learning from" in log and "001-" in log


def test_resume_false_always_starts_a_new_run(tmp_path):
    out = tmp_path / "train"
    ds = {"sha256": "ab" * 32, "count": 3, "resolution": 8, "classes": 0, "bytes": 1, "path": "p"}
    first = choose_run(out, ds, resume=True)
    again = choose_run(out, ds, resume=True)
    assert again.resumed and again.run == first.run
    fresh = choose_run(out, ds, resume=False)
    assert not fresh.resumed and fresh.run.name.startswith("002-abababab") and "resume is false" in fresh.message
    # a non-zero DDP rank computes the same folder without writing anything
    other = {**ds, "sha256": "cd" * 32}
    dry = choose_run(out, other, resume=True, create=False)
    assert dry.run.name == "003-cdcdcdcd" and not dry.run.exists()


def test_switching_the_model_on_the_same_pack_starts_a_new_run_and_switching_back_resumes(tmp_path):
    """The demo trains StyleGAN2; the same demo with train.model: biggan must not try to resume StyleGAN2's
    snapshots (which fails: the model changed) but start its own run beside it, and going back resumes the first."""
    out = tmp_path / "train"
    ds = {"sha256": "ef" * 32, "count": 3, "resolution": 8, "classes": 2, "bytes": 1, "path": "p"}
    sg = choose_run(out, ds, resume=True)  # model None = the default, stylegan2
    assert json.loads((sg.run / "run.json").read_text())["model"] == "stylegan2"
    bg = choose_run(out, ds, resume=True, model="biggan")
    assert not bg.resumed and bg.run.name.startswith("002-") and bg.run != sg.run
    assert f"train.model is 'biggan', run {sg.run.name} trained 'stylegan2' on the same pack" in bg.message
    assert json.loads((bg.run / "run.json").read_text())["model"] == "biggan"
    assert choose_run(out, ds, resume=True, model="biggan").run == bg.run
    back = choose_run(out, ds, resume=True, model="stylegan2")
    assert back.resumed and back.run == sg.run and latest_run(out) == sg.run.resolve()
    # a card written before run.json recorded the model counts as StyleGAN2
    card = sg.run / "run.json"
    card.write_text(json.dumps({k: v for k, v in json.loads(card.read_text()).items() if k != "model"}))
    assert choose_run(out, ds, resume=True).run == sg.run
