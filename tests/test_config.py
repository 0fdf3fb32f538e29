"""Config resolution (demo vs a user's run), one-line config errors before any job, schema-generated CLI flags."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from animefaces import cli, cliflags
from animefaces.config import (
    DEMO_CONFIG,
    RUNTIME_KEYS,
    TEMPLATE_CONFIG,
    ConfigError,
    defaults,
    resolve_config,
    runtime_json,
    section_json,
    section_schema,
    validate_config,
)
from animefaces.configcheck import resolve_checked
from animefaces.configcli import TEMPLATE_DATASET, snakemake_config_args, template
from animefaces.configcli import main as config_main

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _env() -> dict:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def _user_config(tmp_path: Path, extra: dict | None = None, name: str = "mine") -> Path:
    cfg = {"dataset": {"name": name, "root": str(tmp_path / "mirror"), "metadata": ["m.jsonl"]}}
    cfg["demo"] = {"enabled": False}
    for key, value in (extra or {}).items():
        cfg.setdefault(key, {}).update(value) if isinstance(value, dict) else cfg.__setitem__(key, value)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


# ------------------------------------------------------------------------------------------------ demo vs user


def test_a_minimal_user_config_gets_schema_defaults_not_demo_values(tmp_path):
    demo = yaml.safe_load(DEMO_CONFIG.read_text())
    user = resolve_checked([_user_config(tmp_path)])
    schema_defaults = defaults()
    for section in ("train", "normalise", "filter", "classes", "pack", "sample", "shards"):
        assert user[section] == schema_defaults[section], section
    # the demo's own values are not inherited (each differs from the default)
    assert demo["train"]["preset"] == "tiny" and user["train"]["preset"] == "auto"
    assert demo["train"]["kimg"] == 3 and user["train"]["kimg"] is None
    assert demo["train"]["gpus"] == 0 and user["train"]["gpus"] == 1
    assert demo["normalise"]["size"] == 64 and user["normalise"]["size"] == 256
    assert user["filter"]["ratings"] == [] and user["filter"]["exclude_tags"] == []
    # no config file at all: the demo
    assert resolve_config()["demo"]["enabled"] is True
    assert resolve_config()["train"]["preset"] == "tiny"


def test_config_yaml_is_the_generated_template_of_schema_defaults():
    assert TEMPLATE_CONFIG.read_text() == template(), "regenerate: animefaces config --template > config/config.yaml"
    cfg = resolve_checked([TEMPLATE_CONFIG])
    expected = defaults()
    expected["dataset"].update(TEMPLATE_DATASET)
    assert cfg == expected
    assert cfg["demo"]["enabled"] is False


def test_config_resolved_prints_the_effective_config(tmp_path, capsys):
    user = _user_config(tmp_path, {"train": {"kimg": 500}})
    assert config_main(["--resolved", "--configfile", str(user)]) == 0
    out = yaml.safe_load(capsys.readouterr().out)
    assert out["train"]["kimg"] == 500 and out["train"]["preset"] == "auto" and out["dataset"]["name"] == "mine"
    assert config_main(["--get", "dataset.name"]) == 0
    assert capsys.readouterr().out.strip() == "demo"
    # a snakemake command line, as ./dev demo passes it
    assert config_main(["--get", "dataset.name", "--", "--cores", "2", "--configfile", str(user), "-n"]) == 0
    assert capsys.readouterr().out.strip() == "mine"
    assert config_main(["--get", "train.kimg", "--", f"--configfile={user}", "--config", "train={kimg: 7}"]) == 0
    assert capsys.readouterr().out.strip() == "7"
    assert snakemake_config_args(["--configfiles", "a.yaml", "b.yaml", "--cores", "1"]) == (["a.yaml", "b.yaml"], {})


def test_snakemake_without_config_plans_the_demo_and_with_one_never_merges_it(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "demo.yaml").write_text(DEMO_CONFIG.read_text())
    (tmp_path / "config" / "exclude.txt").write_text("")
    base = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", "--cores", "1"]
    demo = subprocess.run(base, capture_output=True, text=True, env=_env(), timeout=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "demo_corpus" in demo.stdout + demo.stderr
    user = _user_config(tmp_path, {"shards": {"count": 2}, "pack": {"formats": ["zip"]}})
    (tmp_path / "m.jsonl").write_text("")
    (tmp_path / "mirror" / "original").mkdir(parents=True)  # the dataset.root pre-flight: the layout's folder
    run = subprocess.run(
        [*base, "-p", "--configfile", str(user)], capture_output=True, text=True, env=_env(), timeout=300
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert "demo_corpus" not in out and "results/mine/" in out
    assert '"preset":"auto"' in out and '"size":256' in out  # the rules get the defaults, not the demo's


def test_funnel_of_the_run_named_by_the_snakemake_arguments(tmp_path, monkeypatch, capsys):
    from animefaces import ledger
    from animefaces.manifest import StageRows, manifest_path, write_manifest

    monkeypatch.chdir(tmp_path)
    user = _user_config(tmp_path)
    rows = StageRows("ingest", "000")
    for i in range(1, 8):
        rows.kept(i, str(i), f"m.jsonl:{i}", path=f"{i}.png")
    write_manifest(rows.frame(extra_columns=["path"]), manifest_path(tmp_path / "results" / "mine", "ingest", "000"))
    assert ledger.main(["--run", "--", "--cores", "2", "--configfile", str(user)]) == 0
    out = capsys.readouterr().out
    assert "ingest" in out and "7" in out
    # the demo has not run here: a sentence, not a traceback
    assert ledger.main(["--run", "--", "--cores", "2"]) == 0
    assert "results/demo has no stage manifests yet" in capsys.readouterr().out
    assert ledger.main([str(tmp_path / "nothing")]) == 1
    assert "no stage manifests" in capsys.readouterr().err
    assert 'animefaces funnel --run -- "$@"' in (REPO / "dev").read_text()


# ------------------------------------------------------------------------------------------------ bad configs

# (config overrides of a valid user config, the key the one-line message must name, a word of the problem)
BAD_CONFIGS = [
    ({"trian": {"kimg": 5}}, "trian", "did you mean 'train'"),
    ({"train": {"kmig": 5}}, "train.kmig", "did you mean 'kimg'"),
    ({"train": {"kimg": -1}}, "train.kimg", "must be >"),
    ({"train": {"kimg": "lots"}}, "train.kimg", "must be a number or null"),
    ({"train": {"preset": "huge"}}, "train.preset", "must be one of"),
    ({"train": {"resolution": 48}}, "train.resolution", "power of two"),
    ({"train": {"resolution": 512}}, "train.resolution", "larger than"),
    ({"normalise": {"size": 100}, "pack": {"formats": ["tfrecord", "zip"]}}, "normalise.size", "tfrecord"),
    ({"normalise": {"size": 100}}, "normalise.size", "training need a power of two"),
    ({"crop": {"min_face": 5000}}, "crop.min_face", "must be <="),
    ({"crop": {"min_face": 0}}, "crop.min_face", "must be >="),
    ({"crop": {"cascade_path": "/no/such/cascade.xml"}}, "crop.cascade_path", "no such file"),
    ({"crop": {"detector": "yolo"}}, "crop.detector", "must be one of"),
    ({"shards": {"count": 0}}, "shards.count", "must be >="),
    ({"shards": {"count": 25, "per_job": 10}}, "shards.per_job", "must divide shards.count = 25"),
    ({"shards": {"per_job": 4}}, "shards.per_job", "must be one of"),
    ({"filter": {"ratings": ["s"]}}, "filter.ratings", "rating_scheme"),
    ({"filter": {"ratings": ["x"]}}, "filter.ratings[0]", "must be one of"),
    ({"dataset": {"name": "my run"}}, "dataset.name", "pattern"),
    ({"dataset": {"source": "booru"}}, "dataset.source", "must be one of"),
    ({"pack": {"formats": ["hdf5", "hdf5"]}}, "pack.formats", "repeated"),
    ({"sample": {"psis": []}}, "sample.psis", "at least 1"),
    ({"normalise": {"upscale": {"device": "gpu0"}}}, "normalise.upscale.device", "pattern"),
    ({"dedup": {"max_distance": 64}}, "dedup.max_distance", "must be <="),
    ({"demo": {"enabled": True}}, "dataset.metadata", "demo"),
]


@pytest.mark.parametrize("extra,key,problem", BAD_CONFIGS, ids=[c[1] + ":" + c[2][:12] for c in BAD_CONFIGS])
def test_bad_config_is_one_short_message_naming_the_key(tmp_path, capsys, extra, key, problem):
    path = _user_config(tmp_path, extra)
    with pytest.raises(ConfigError) as err:
        resolve_checked([path])
    assert len(err.value.errors) == 1, err.value.errors
    line = err.value.errors[0]
    assert key in line and problem in line, line
    assert config_main(["--resolved", "--configfile", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) <= 5 and key in captured.err


def test_several_problems_are_listed_one_per_line():
    with pytest.raises(ConfigError) as err:
        validate_config({"trian": {}, "crop": {"min_face": "big", "scale_factor": 1.0}, "shards": {"count": 0}})
    lines = str(err.value).splitlines()
    assert len(lines) == 1 + 4 and all(line.startswith("  - ") for line in lines[1:]), lines
    assert len(str(err.value)) < 600  # no schema dump


# the first case of each kind through the real Snakefile (the rest of the table runs in the slow test below)
SNAKEMAKE_CASES = [BAD_CONFIGS[0], BAD_CONFIGS[5], BAD_CONFIGS[11]]


def _snakemake_bad(tmp_path: Path, extra: dict) -> subprocess.CompletedProcess:
    path = _user_config(tmp_path, extra)
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "--cores", "1"]
    return subprocess.run([*cmd, "--configfile", str(path)], capture_output=True, text=True, env=_env(), timeout=300)


def _assert_fails_before_any_job(tmp_path: Path, run: subprocess.CompletedProcess, key: str, problem: str) -> None:
    text = (run.stdout + run.stderr).strip()
    assert run.returncode == 2, text[-2000:]
    assert len(text.splitlines()) <= 5, text
    assert key in text and problem in text and "Traceback" not in text, text
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("extra,key,problem", SNAKEMAKE_CASES, ids=[c[1] for c in SNAKEMAKE_CASES])
def test_snakemake_stops_on_a_bad_config_before_any_job(tmp_path, extra, key, problem):
    _assert_fails_before_any_job(tmp_path, _snakemake_bad(tmp_path, extra), key, problem)


@pytest.mark.slow
def test_every_bad_config_stops_snakemake_before_any_job(tmp_path):
    for i, (extra, key, problem) in enumerate(BAD_CONFIGS):
        work = tmp_path / str(i)
        work.mkdir()
        _assert_fails_before_any_job(work, _snakemake_bad(work, extra), key, problem)


# ------------------------------------------------------------------------------------------------ rule params


def test_runtime_keys_are_split_off_the_rule_params():
    cfg = resolve_config()
    for section, keys in RUNTIME_KEYS.items():
        params, runtime = json.loads(section_json(cfg, section)), json.loads(runtime_json(cfg, section))
        for dotted in keys:
            *parents, leaf = dotted.split(".")
            p, r = params, runtime
            for part in parents:
                p, r = p[part], r[part]
            assert leaf not in p and leaf in r, (section, dotted)
    changed = resolve_config(overrides={"normalise": {"upscale": {"device": "cpu"}}, "train": {"threads": 7}})
    assert section_json(changed, "normalise") == section_json(cfg, "normalise")
    assert section_json(changed, "train") == section_json(cfg, "train")
    assert section_json(resolve_config(overrides={"crop": {"min_face": 60}}), "crop") != section_json(cfg, "crop")
    # the sections the pack rules record in their dataset cards (a rule param) leave the runtime keys out too
    from animefaces.wiring import pack_card_config

    moved = resolve_config(overrides={"normalise": {"upscale": {"device": "cpu"}}, "select": {"exclude_file": "x"}})
    assert pack_card_config(moved) == pack_card_config(cfg)
    assert pack_card_config(resolve_config(overrides={"normalise": {"size": 32}})) != pack_card_config(cfg)


MINI_SNAKEFILE = """
if not workflow.overwrite_configfiles:
    configfile: "config/demo.yaml"
include: "{repo}/workflow/rules/common.smk"
wildcard_constraints:
    shard=r"\\d{{3}}",
include: "{repo}/workflow/rules/crop.smk"
include: "{repo}/workflow/rules/normalise.smk"
rule all:
    input: TARGETS
"""


def test_moving_the_cascade_or_changing_a_device_reruns_nothing(tmp_path, shared):
    """Crop and normalise on empty shards, then `snakemake -n` after changing runtime keys (nothing to do) and
    after changing a key that alters the crops (crop and normalise rerun)."""
    from animefaces.manifest import StageRows, write_manifest

    work = tmp_path / "wf"
    (work / "workflow").mkdir(parents=True)
    (work / "workflow" / "animefaces").symlink_to(REPO / "workflow" / "animefaces")
    (work / "Snakefile").write_text(MINI_SNAKEFILE.format(repo=REPO))
    res = work / "results" / "mini"
    for stage in ("ingest", "dedup"):
        write_manifest(StageRows(stage, "000").frame(extra_columns=["path"]), res / stage / "manifests" / "000.parquet")
    cascade = tmp_path / "a" / "lbpcascade_animeface.xml"
    cascade.parent.mkdir()
    cascade.write_bytes((shared / "cascade" / "lbpcascade_animeface.xml").read_bytes())

    def snake(cfg: dict, *args: str) -> str:
        path = work / "c.yaml"
        path.write_text(yaml.safe_dump(cfg))
        cmd = [str(BIN / "snakemake"), "--cores", "1", "--configfile", str(path), *args]
        run = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env=_env(), timeout=600)
        assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
        return run.stdout + run.stderr

    base = {"dataset": {"name": "mini"}, "shards": {"count": 1}, "crop": {"cascade_path": str(cascade)}}
    snake(base)
    assert (res / "normalise" / "manifests" / "000.parquet").is_file()
    moved = tmp_path / "b" / "lbpcascade_animeface.xml"
    moved.parent.mkdir()
    moved.write_bytes(cascade.read_bytes())
    runtime = yaml.safe_load(yaml.safe_dump(base))
    runtime["crop"]["cascade_path"] = str(moved)
    runtime["normalise"] = {"upscale": {"device": "cpu"}}
    assert "Nothing to be done" in snake(runtime, "-n")
    changed = dict(runtime, crop={"cascade_path": str(moved), "min_face": 60})
    plan = snake(changed, "-n")
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)\s*$", plan, re.M))
    assert jobs.get("crop") == "1" and jobs.get("normalise") == "1" and "fetch_cascade" not in jobs, plan[-3000:]


# ------------------------------------------------------------------------------------------------ CLI flags

STAGE_CLIS = {
    # command: (module, its args besides the section's, section, flags, the same as --params JSON)
    "crop": (
        "animefaces.crop",
        ["--shard", "000", "--manifest", "m", "--out-manifest", "o", "--images", "i"],
        "crop",
        ["--min-face", "80", "--geometry", "box", "--scale-factor", "1.2", "--no-square"],
        {"min_face": 80, "geometry": "box", "scale_factor": 1.2, "square": False},
    ),
    "clean": (
        "animefaces.clean",
        ["--input", "i", "--output", "o"],
        "clean",
        ["--min-size", "32", "--monochrome", "greyscale", "--greyscale-saturation", "0.2"],
        {"min_size": 32, "monochrome": ["greyscale"], "greyscale": {"saturation": 0.2}},
    ),
    "dedup": (
        "animefaces.dedup",
        ["--inputs", "a/000.parquet", "--outputs", "b/000.parquet", "--pairs", "p"],
        "dedup",
        ["--max-distance", "4", "--no-near", "--hash", "dhash"],
        {"max_distance": 4, "near": False, "hash": "dhash"},
    ),
    "normalise": (
        "animefaces.normalise",
        ["--input", "i", "--output", "o", "--images", "d"],
        "normalise",
        ["--size", "128", "--fit", "crop_top", "--pad-colour", "1,2,3", "--upscale-max-factor", "2"],
        {"size": 128, "fit": "crop_top", "pad_colour": [1, 2, 3], "upscale": {"max_factor": 2}},
    ),
    "select": (
        "animefaces.select",
        ["--manifests", "m", "--manifest-out", "o", "--dataset-out", "d"],
        "select",
        ["--select-classes", "saber,3", "--no-keep-unlabelled", "--min-class-count", "2"],
        {"classes": ["saber", 3], "keep_unlabelled": False, "min_class_count": 2},
    ),
    "pack": (
        "animefaces.pack",
        ["zip", "--dataset", "d", "--out", "o"],
        "pack",
        ["--hdf5-chunk", "64", "--zip-labels", "never"],
        {"hdf5": {"chunk": 64}, "zip": {"labels": "never"}},
    ),
    "train": (
        "animefaces.train",
        ["--data", "d.hdf5", "--outdir", "o"],
        "train",
        ["--kimg", "500", "--gpus", "1", "--preset", "faces64", "--r1-gamma", "null", "--augment", "ada"],
        {"kimg": 500, "gpus": 1, "preset": "faces64", "r1_gamma": None, "augment": "ada"},
    ),
    "sample": (
        "animefaces.sample",
        ["images", "--network", "n.pt", "--outdir", "o"],
        "sample",
        ["--seeds", "0-99", "--psi", "0.7", "--noise-mode", "random"],
        {"seed_start": 0, "count": 100, "psis": [0.7], "noise_mode": "random"},
    ),
    "sample-classes": (
        "animefaces.sample_classes",
        ["sheets", "--network", "n.pt", "--outdir", "o"],
        "sample",
        ["--psi", "0.5,1", "--count", "9"],
        {"psis": [0.5, 1], "count": 9},
    ),
    "rank": (
        "animefaces.rank",
        ["--manifests", "a.parquet", "b.parquet", "--out", "o.parquet", "--sheets", "s"],
        "rank",
        ["--batch", "8", "--shuffles", "3", "--sheet-fraction", "0.2", "--network", "d.pt"],
        {"batch": 8, "shuffles": 3, "sheet_fraction": 0.2, "network": "d.pt"},
    ),
    "metrics": (
        "animefaces.metrics.cli",
        ["fakes", "--real", "reals"],
        "metrics",
        ["--metrics", "rand-fd,rand-kid,fid", "--num-images", "64", "--kid-subsets", "10", "--psi", "0.5"],
        {"metrics": ["rand-fd", "rand-kid", "fid"], "num_images": 64, "kid_subsets": 10, "psi": 0.5},
    ),
    "demo": (
        "animefaces.demo.__main__",
        ["--root", "r"],
        "demo",
        ["--posts", "60", "--seed", "3"],
        {"posts": 60, "seed": 3},
    ),
}


class _Captured(Exception):
    pass


def _section_of(monkeypatch, argv: list[str], module_name: str) -> dict:
    """The validated section a stage CLI computes from ``argv`` (the stage stops right after parsing)."""
    import importlib

    got = {}

    def capture(ap, args, section, **kw):
        got["params"] = cliflags.section_from_args(args, section, **kw)
        raise _Captured

    module = importlib.import_module(module_name)
    monkeypatch.setattr(cliflags, "section_or_exit", capture)
    if hasattr(module, "section_or_exit"):
        monkeypatch.setattr(module, "section_or_exit", capture)
    with pytest.raises(_Captured):
        module.main(argv)
    return got["params"]


@pytest.mark.parametrize("command", list(STAGE_CLIS))
def test_flags_and_params_give_the_same_stage_settings(monkeypatch, tmp_path, command):
    module, base, section, flags, as_json = STAGE_CLIS[command]
    from_flags = _section_of(monkeypatch, [*base, *flags], module)
    from_params = _section_of(monkeypatch, [*base, "--params", json.dumps(as_json)], module)
    assert from_flags == from_params
    assert from_flags != validate_config({section: {}})[section]  # the flags did change something
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({section: as_json}))
    assert _section_of(monkeypatch, [*base, "--config", str(cfg_file)], module) == from_flags
    # flags win over --params
    first_flag = flags[0] if flags[0] != "--seeds" else "--psi"
    merged = _section_of(monkeypatch, [*base, "--params", json.dumps(as_json), *flags], module)
    assert merged == from_flags, first_flag


def test_ingest_flags_and_json_give_the_same_sections(monkeypatch, tmp_path):
    from animefaces.ingest import cli as ingest_cli

    got = []

    def capture(out, dataset, filter_section, classes_section, shards, threads=1):
        got.append((dataset, filter_section, classes_section, shards, threads))
        raise _Captured

    monkeypatch.setattr(ingest_cli, "ingest", capture)
    base = ["--out", str(tmp_path / "o"), "--shards", "3", "--threads", "2"]
    flags = ["--root", "m", "--metadata", "a.jsonl,b.jsonl", "--ratings", "s,q", "--rating-scheme", "legacy"]
    flags += ["--exclude-tags", "comic", "--min-score", "0", "--top-k", "5", "--aliases", "{saber_alter: saber}"]
    as_json = [
        "--dataset",
        json.dumps({"root": "m", "metadata": ["a.jsonl", "b.jsonl"]}),
        "--filter",
        json.dumps({"ratings": ["s", "q"], "rating_scheme": "legacy", "exclude_tags": ["comic"], "min_score": 0}),
        "--classes",
        json.dumps({"top_k": 5, "aliases": {"saber_alter": "saber"}}),
    ]
    for argv in ([*base, *flags], [*base, *as_json]):
        with pytest.raises(_Captured):
            ingest_cli.main(argv)
    assert got[0] == got[1]
    assert got[0][1]["ratings"] == ["s", "q"] and got[0][2]["aliases"] == {"saber_alter": "saber"}
    assert got[0][3:] == (3, 2)  # shards, threads


@pytest.mark.parametrize("command", [*STAGE_CLIS, "ingest"])
def test_stage_help_shows_every_key_with_its_default(capsys, command):
    import importlib

    module, sections = (
        ("animefaces.ingest.cli", ["dataset", "filter", "classes"])
        if command == "ingest"
        else (STAGE_CLIS[command][0], [STAGE_CLIS[command][2]])
    )
    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for section in sections:
        schema_defaults = validate_config({section: {}})[section]
        shown = 0
        for dotted, _ in cliflags.iter_keys(section_schema(section)):
            flag = cliflags.flag_name(dotted)
            if flag in out:
                value = schema_defaults
                for part in dotted.split("."):
                    value = value[part]
                shown += 1
                assert f"[default: {json.dumps(value)}]" in out, (flag, value)
        assert shown >= len(list(cliflags.iter_keys(section_schema(section)))) - 1  # pack.formats, demo.enabled


def test_bad_flag_value_is_a_config_error_naming_the_key(capsys):
    from animefaces.crop import main as crop_main

    with pytest.raises(SystemExit) as exit_:
        crop_main(["--shard", "000", "--manifest", "m", "--out-manifest", "o", "--images", "i", "--min-face", "x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "crop.min_face" in err and "integer" in err


def test_top_level_help_version_and_unknown_commands(capsys):
    from animefaces import __version__

    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert sum(line.split()[:1] == [name] for line in out.splitlines()) == 1, name
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"animefaces {__version__}"
    assert cli.main(["trian"]) == 2 and "did you mean 'train'" in capsys.readouterr().err


def test_report_commands_take_a_results_folder_and_fail_with_a_sentence(tmp_path, capsys):
    from animefaces.report.cli import main as report_main

    res = tmp_path / "results" / "x"
    res.mkdir(parents=True)
    for argv in (
        ["kept", str(res), "--out", str(tmp_path / "k.png")],
        ["training", str(res), "--curves", str(tmp_path / "c.png"), "--montage", str(tmp_path / "m.png")],
        ["funnel", str(res), "--tsv", str(tmp_path / "f.tsv")],
        ["cards", str(res), "--out", str(tmp_path / "c.html")],
    ):
        assert report_main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and str(res) in err, err
