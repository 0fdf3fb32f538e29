"""``shards.per_job``: several shards in one job of each per-shard stage.

Fast: the crop, clean and normalise commands given two shards at once write exactly what one call per shard writes
(manifests, ledger rows, images), on real illustrations; mismatched flags are a usage error; a failing shard names
itself. Slow: the workflow at 10 shards with ``per_job: 10`` (one job per stage) against ``per_job: 1`` (10 jobs
per stage) through normalise, on the real demo mirror."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from animefaces import clean, crop, ledger, normalise
from animefaces.dedup import main as dedup_main
from animefaces.manifest import StageRows, manifest_path, read_manifest, write_manifest
from test_partial_rerun import REPO, copy_workflow, planned_jobs, snakemake

SAMPLES = "illustrations/jonathonyan_detection_samples"
SHARDS = ("000", "001")


def _ingest(res: Path, shared: Path) -> None:
    """Two ingest shards of real illustrations (four posts each)."""
    files = sorted((shared / SAMPLES).glob("*.jpg"))[:8]
    for k, shard in enumerate(SHARDS):
        rows = StageRows("ingest", shard)
        for i, path in enumerate(files[4 * k : 4 * k + 4]):
            pid = 1000 * (k + 1) + i
            rows.kept(pid, str(pid), f"meta.jsonl:{pid}", path=str(path), file_ext="jpg", label=0, character="")
        write_manifest(rows.frame(), manifest_path(res, "ingest", shard))


def _stages(res: Path, shared: Path, together: bool) -> None:
    """crop -> clean -> dedup -> normalise of both shards, either one call per stage or one call per shard."""
    groups = [list(SHARDS)] if together else [[s] for s in SHARDS]
    cascade = str(shared / "cascade" / "lbpcascade_animeface.xml")

    def files(stage: str, shards: list[str]) -> list[str]:
        return [str(manifest_path(res, stage, s)) for s in shards]

    for g in groups:
        images = [str(res / "crop" / "images" / s) for s in g]
        argv = ["--manifest", *files("ingest", g), "--out-manifest", *files("crop", g), "--images", *images]
        assert crop.main([*argv, "--cascade", cascade, "--no-progress", "--params", json.dumps({"min_face": 24})]) == 0
        assert clean.main(["--input", *files("crop", g), "--output", *files("clean", g)]) == 0
    pairs = str(res / "dedup" / "pairs.parquet")
    assert (
        dedup_main(["--inputs", *files("clean", SHARDS), "--outputs", *files("dedup", SHARDS), "--pairs", pairs]) == 0
    )
    for g in groups:
        images = [str(res / "normalise" / "images" / s) for s in g]
        argv = ["--input", *files("dedup", g), "--output", *files("normalise", g), "--images", *images]
        assert normalise.main([*argv, "--params", json.dumps({"size": 64})]) == 0


def _images(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def test_two_shards_in_one_call_write_what_one_call_per_shard_writes(tmp_path, shared):
    res, one = tmp_path / "res", tmp_path / "one"
    _ingest(res, shared)
    _stages(res, shared, together=True)
    res.rename(one)  # the second run writes to the same paths, so the manifests' path columns compare too
    _ingest(res, shared)
    _stages(res, shared, together=False)
    for stage in ("crop", "clean", "dedup", "normalise"):
        for shard in SHARDS:
            a, b = read_manifest(manifest_path(one, stage, shard)), read_manifest(manifest_path(res, stage, shard))
            pd.testing.assert_frame_equal(a, b, obj=f"{stage}/{shard}")
            assert set(a["shard"]) <= {shard}  # each shard's rows carry its own name
    kept = read_manifest(manifest_path(one, "normalise", "001"))
    assert (kept["status"] == "kept").sum() >= 1  # real faces came through both shards
    for stage in ("crop", "normalise"):
        pics = _images(one / stage / "images")
        assert pics and pics == _images(res / stage / "images")
        assert {Path(k).parts[0] for k in pics} == set(SHARDS)
    assert ledger.reconcile(ledger.load_ledger(one)) == []


def test_flags_need_one_value_per_shard_and_a_failing_shard_names_itself(tmp_path, shared, capsys):
    res = tmp_path / "res"
    _ingest(res, shared)
    ingest = [str(manifest_path(res, "ingest", s)) for s in SHARDS]
    out = [str(manifest_path(res, "crop", s)) for s in SHARDS]
    with pytest.raises(SystemExit) as exc:
        crop.main(["--manifest", *ingest, "--out-manifest", *out, "--images", str(tmp_path / "img")])
    assert exc.value.code == 2
    assert "one value per shard" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        clean.main(["--input", ingest[0], ingest[0], "--output", *out])
    assert exc.value.code == 2 and "named twice: 000 000" in capsys.readouterr().err
    # files listed in different orders: caught by their names before anything is read
    images = [str(tmp_path / "img" / s) for s in SHARDS]
    with pytest.raises(SystemExit) as exc:
        normalise.main(["--input", *ingest, "--output", *reversed(out), "--images", *images])
    assert exc.value.code == 2 and "is not shard 000's file" in capsys.readouterr().err
    # the second shard's manifest is missing: exit 1 naming it, and its manifest is not written
    (Path(ingest[1])).unlink()
    argv = ["--manifest", *ingest, "--out-manifest", *out, "--images", *images, "--no-progress"]
    assert crop.main([*argv, "--cascade", str(shared / "cascade" / "lbpcascade_animeface.xml")]) == 1
    assert "shard 001" in capsys.readouterr().err
    assert Path(out[0]).exists() and not Path(out[1]).exists()


@pytest.mark.slow  # the demo mirror, ingest, then crop, clean, dedup and normalise of 10 shards, twice: ~2 minutes
def test_one_job_of_ten_shards_writes_what_ten_jobs_write(tmp_path, shared):
    def workflow(dest: Path, per_job: int) -> tuple[Path, Path]:
        work = copy_workflow(dest)
        (work / "resources").mkdir(exist_ok=True)
        shutil.copy(shared / "cascade" / "lbpcascade_animeface.xml", work / "resources" / "lbpcascade_animeface.xml")
        cfg = yaml.safe_load((REPO / "config" / "demo.yaml").read_text())
        cfg["demo"]["posts"] = 60
        cfg["shards"].update(count=10, per_job=per_job)
        configfile = work / "run.yaml"
        configfile.write_text(yaml.safe_dump(cfg))
        return work, configfile

    targets = [f"results/demo/normalise/manifests/{s:03d}.parquet" for s in range(10)]
    apart, apart_cfg = workflow(tmp_path / "apart", 1)
    jobs = planned_jobs(apart, *targets, "--configfile", str(apart_cfg))
    assert jobs == {"demo_corpus": 1, "ingest": 1, "crop": 10, "clean": 10, "dedup": 1, "normalise": 10}, jobs
    snakemake(apart, *targets, "--configfile", str(apart_cfg))

    together, together_cfg = workflow(tmp_path / "together", 10)
    # the same mirror and ingest manifests (mtimes kept): only the per-shard stages and dedup are left to run
    for part in ("results/demo_mirror", "results/demo/ingest"):
        src = apart / part
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, together / part)
    jobs = planned_jobs(together, *targets, "--configfile", str(together_cfg))
    assert jobs == {"crop": 1, "clean": 1, "dedup": 1, "normalise": 1}, jobs
    snakemake(together, *targets, "--configfile", str(together_cfg))

    for stage in ("crop", "clean", "dedup", "normalise"):
        for shard in (f"{s:03d}" for s in range(10)):
            rel = f"results/demo/{stage}/manifests/{shard}.parquet"
            pd.testing.assert_frame_equal(pd.read_parquet(together / rel), pd.read_parquet(apart / rel), obj=rel)
    for stage in ("crop", "normalise"):
        pics = _images(together / "results/demo" / stage / "images")
        assert pics and pics == _images(apart / "results/demo" / stage / "images")
    # one log and one benchmark per job, named by the job (the shards' common digits)
    for stage in ("crop", "clean", "normalise"):
        assert [p.name for p in (together / "results/demo/logs" / stage).iterdir()] == ["00.log"], stage
        assert [p.name for p in (together / "results/demo/benchmarks" / stage).iterdir()] == ["00.tsv"], stage
    assert ledger.reconcile(ledger.load_ledger(together / "results/demo")) == []
    assert planned_jobs(together, *targets, "--configfile", str(together_cfg)) == {}
