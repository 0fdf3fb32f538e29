"""The per-rule-family conda envs (envs/*.yaml) are generated from the pins in pyproject.toml and cover the code.

- the env files are what ``tools/gen_envs.py`` generates from pyproject.toml (pins live there only), and
  requirements.lock (the dev venv's pip freeze) agrees with those pins;
- every rule that runs something has a family ``conda:`` env, and every third-party import of the modules a rule
  runs (``python -m animefaces.X`` / ``animefaces <cmd>`` in its shell command, plus everything those import from
  the package) is provided by that family's packages: directly, or as a dependency of one of them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import gen_envs  # tools/gen_envs.py (pytest's pythonpath)
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent

FAMILIES = tuple(gen_envs.FAMILIES)


# ------------------------------------------------------------------------------------------------ pins
def lock_pins(root: Path) -> dict[str, str]:
    pins = {}
    for line in (root / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, ver = line.partition("==")
            pins[canonicalize_name(name)] = ver.strip()
    return pins


def test_env_files_are_generated_from_pyproject():
    assert gen_envs.stale(REPO) == [], "run: python tools/gen_envs.py"


def test_lock_agrees_with_pyproject():
    lock = lock_pins(REPO)
    pinned = {n: v for n, v in gen_envs.pins(REPO).items() if n not in gen_envs.NOT_IN_DEV_VENV}
    assert {n: lock.get(n) for n in pinned} == pinned
    assert not set(gen_envs.NOT_IN_DEV_VENV) & set(lock), "a package listed as not in the dev venv is in the lock"


def test_a_changed_pin_makes_the_envs_using_it_stale(tmp_path):
    shutil.copytree(REPO / "envs", tmp_path / "envs")
    text = (REPO / "pyproject.toml").read_text()
    assert '"h5py==' in text
    (tmp_path / "pyproject.toml").write_text(re.sub(r'"h5py==[^"]+"', '"h5py==0.0.1"', text))
    assert gen_envs.stale(tmp_path) == ["envs/pack.yaml", "envs/train.yaml", "envs/report.yaml"]
    assert gen_envs.main(["--root", str(tmp_path)]) == 0 and gen_envs.stale(tmp_path) == []
    assert "  - h5py=0.0.1\n" in (tmp_path / "envs" / "pack.yaml").read_text()


# ------------------------------------------------------------------------------------------------ rules
@dataclass
class RuleInfo:
    name: str
    env: Path | None  # resolved conda env file, None when the rule has none
    modules: list[str]  # animefaces modules its command runs
    runs_something: bool
    kind: str  # shell / script / run / none
    resources: dict = field(default_factory=dict)  # what the rule itself declares (plain values only)
    local: bool = False  # localrule: runs where snakemake runs, never submitted to a cluster


def load_rules(snakefile: Path, workdir: Path, config: dict | None = None) -> list[RuleInfo]:
    """The workflow's rules through the Snakemake API (no regex over .smk files): env, command, modules run.
    ``config`` overrides keys of config/demo.yaml, the config without --configfile (like ``--config``)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    commands = cli_commands(workdir)
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        wf = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(config=config or {}),
            snakefile=snakefile,
            workdir=workdir,
        )._workflow
        rules = []
        for rule in wf.rules:
            text = " ".join(str(x) for x in (rule.shellcmd, rule.script) if x)
            mods = re.findall(r"python3?\s+-m\s+(animefaces(?:\.\w+)*)", text)
            mods += [commands[c] for c in re.findall(r"(?<![\w.-])animefaces\s+([\w-]+)", text) if c in commands]
            if rule.shellcmd:
                kind = "shell"
            elif rule.script:
                kind = "script"
            elif rule.norun:
                kind = "none"
            else:
                kind = "run"
            env = None
            if rule.conda_env:
                env = (Path(rule.snakefile).parent / str(rule.conda_env)).resolve()
            declared = {}
            for key, res in rule.resources.items():
                try:
                    value = res.value  # raises for resources computed per job (tmpdir, callables)
                except ValueError:
                    continue
                if not key.startswith("_") and isinstance(value, int | float | str):
                    declared[key] = value
            local = rule.name in getattr(wf, "_localrules", set())
            rules.append(RuleInfo(rule.name, env, sorted(set(mods)), kind != "none", kind, declared, local))
        return rules


def cli_commands(root: Path) -> dict[str, str]:
    """``animefaces <command>`` -> module, read statically from animefaces/cli.py."""
    tree = ast.parse((root / "workflow" / "animefaces" / "cli.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "COMMANDS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def check_rules(rules: list[RuleInfo], root: Path) -> list[str]:
    problems = []
    for rule in rules:
        if not rule.runs_something:
            continue
        if rule.kind == "run":
            problems.append(f"rule {rule.name}: uses run:, which cannot have a conda env; call the package in shell:")
        elif rule.env is None:
            problems.append(f"rule {rule.name}: no conda: directive (use ../../envs/<family>.yaml)")
        elif not rule.env.is_file():
            problems.append(f"rule {rule.name}: conda env {rule.env} does not exist")
        elif rule.env.parent != (root / "envs").resolve() or rule.env.stem not in FAMILIES:
            problems.append(f"rule {rule.name}: conda env {rule.env} is not one of envs/{{{','.join(FAMILIES)}}}.yaml")
    return problems


# ------------------------------------------------------------------------------------------------ imports
def module_exists(pkg_root: Path, module: str) -> bool:
    base = pkg_root.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def module_files(pkg_root: Path, module: str, as_main: bool = False) -> list[tuple[Path, str]]:
    """(file, package its relative imports resolve against) that Python executes to import ``module``:
    the parent packages' ``__init__``, then the module itself (and a package's ``__main__`` for ``python -m``)."""
    parts = module.split(".")
    files = []
    for i in range(1, len(parts)):
        init = pkg_root.joinpath(*parts[:i], "__init__.py")
        if init.is_file():
            files.append((init, ".".join(parts[:i])))
    base = pkg_root.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        files.append((base.with_suffix(".py"), ".".join(parts[:-1])))
    elif (base / "__init__.py").is_file():
        files.append((base / "__init__.py", module))
        if as_main and (base / "__main__.py").is_file():
            files.append((base / "__main__.py", module))
    return files


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside ``try: ... except ImportError`` (optional extra) or ``if TYPE_CHECKING:`` (never executed)."""
    child, cur = node, parents.get(node)
    while cur is not None:
        if isinstance(cur, ast.Try) and child in cur.body:
            for h in cur.handlers:
                names = [h.type] if not isinstance(h.type, ast.Tuple) else list(h.type.elts)
                if any(getattr(n, "id", None) in {"ImportError", "ModuleNotFoundError"} for n in names if n):
                    return True
        if isinstance(cur, ast.If) and "TYPE_CHECKING" in ast.unparse(cur.test) and child in cur.body:
            return True
        child, cur = cur, parents.get(cur)
    return False


def imports_of(path: Path, package: str) -> tuple[set[str], set[str]]:
    """(top-level names of non-package imports, animefaces modules) one file needs; relative imports resolve
    against ``package``; optional imports (see ``_optional``) are left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    external, internal = set(), set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _optional(node, parents):
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            mod = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] == "animefaces":
                internal.add(name)
            elif name:
                external.add(name.split(".")[0])
    return external, internal


def third_party_imports(pkg_root: Path, modules: list[str]) -> dict[str, set[str]]:
    """Top-level third-party import name -> the package files (transitively reached from ``modules``, run with
    ``python -m``) that import it."""
    seen: set[Path] = set()
    todo = [(m, True) for m in modules]
    found: dict[str, set[str]] = {}
    while todo:
        mod, as_main = todo.pop()
        for path, package in module_files(pkg_root, mod, as_main):
            if path in seen:
                continue
            seen.add(path)
            external, internal = imports_of(path, package)
            where = str(path.relative_to(pkg_root))
            for name in external:
                if name not in sys.stdlib_module_names and name != "__future__":
                    found.setdefault(name, set()).add(where)
            todo += [(m, False) for m in internal]
    return found


@cache
def _requirements_closure(dist: str) -> frozenset[str]:
    """Canonical names of ``dist`` and everything it needs (installed metadata, extras off)."""
    out, todo = set(), [dist]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in out:
            continue
        out.add(name)
        try:
            reqs = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for r in reqs:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return frozenset(out)


def check_imports(rules: list[RuleInfo], pkg_root: Path) -> list[str]:
    dists = importlib.metadata.packages_distributions()
    problems = []
    for rule in rules:
        if rule.env is None or not rule.env.is_file() or not rule.modules:
            continue
        packages = gen_envs.family_packages(rule.env.stem) if rule.env.stem in gen_envs.FAMILIES else []
        provided = set().union(*(_requirements_closure(n) for n in packages)) if packages else set()
        for mod in rule.modules:
            if not module_exists(pkg_root, mod):
                problems.append(f"rule {rule.name}: runs {mod}, which does not exist under {pkg_root}")
        for name, where in sorted(third_party_imports(pkg_root, rule.modules).items()):
            owners = [canonicalize_name(d) for d in dists.get(name, [])]
            if not owners:
                problems.append(
                    f"rule {rule.name}: {', '.join(sorted(where))} imports {name!r}, which no installed distribution "
                    "provides (add the package to pyproject.toml and the env)"
                )
            elif not set(owners) & provided:
                problems.append(
                    f"rule {rule.name} (envs/{rule.env.name}): {', '.join(sorted(where))} imports {name!r} "
                    f"({owners[0]}), which envs/{rule.env.name} does not provide: add it, pinned"
                )
    return problems


# ------------------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def repo_rules() -> list[RuleInfo]:
    return load_rules(REPO / "Snakefile", REPO)


def test_every_rule_has_a_family_env(repo_rules):
    assert [r for r in repo_rules if r.runs_something], "the workflow has no rules that run anything"
    assert check_rules(repo_rules, REPO) == []


def test_rule_imports_are_covered_by_their_env(repo_rules):
    assert check_imports(repo_rules, REPO / "workflow") == []


def test_every_family_env_is_used(repo_rules):
    used = {r.env.stem for r in repo_rules if r.env is not None}
    assert used == set(FAMILIES), f"envs used by no rule: {sorted(set(FAMILIES) - used)}"


def test_missing_import_coverage_and_missing_conda_are_reported(tmp_path):
    """A tiny workflow: one rule's module imports h5py (not in its env) through an internal import; one has no env."""
    pkg = tmp_path / "workflow" / "animefaces"
    (pkg / "stage").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("COMMANDS = {'stage': 'animefaces.stage'}\n")
    (pkg / "helper.py").write_text(
        "import json\nimport numpy as np\ntry:\n    import torch\nexcept ImportError:\n    torch = None\n"
    )
    (pkg / "stage" / "__init__.py").write_text("from .inner import main\n")
    (pkg / "stage" / "inner.py").write_text("from animefaces import helper\n\ndef main():\n    import h5py\n")
    (pkg / "stage" / "__main__.py").write_text("from . import main\nmain()\n")
    shutil.copytree(REPO / "envs", tmp_path / "envs")
    (tmp_path / "Snakefile").write_text(
        "rule a:\n    output: 'a'\n    conda: 'envs/ingest.yaml'\n    shell: 'python -m animefaces.stage > {output}'\n"
        "rule b:\n    output: 'b'\n    conda: 'envs/pack.yaml'\n    shell: 'animefaces stage > {output}'\n"
        "rule c:\n    output: 'c'\n    shell: 'touch {output}'\n"
    )
    rules = load_rules(tmp_path / "Snakefile", tmp_path)
    assert {r.name: r.modules for r in rules} == {"a": ["animefaces.stage"], "b": ["animefaces.stage"], "c": []}
    imports = check_imports(rules, tmp_path / "workflow")
    # ingest.yaml lacks h5py (imported inside a function of a module reached via the package's __init__);
    # pack.yaml has it; numpy is in both; torch is optional (try/except ImportError); json is stdlib
    assert len(imports) == 1 and "rule a" in imports[0] and "'h5py'" in imports[0], imports
    assert check_rules(rules, tmp_path) == ["rule c: no conda: directive (use ../../envs/<family>.yaml)"]
