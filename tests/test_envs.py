"""The per-rule-family conda envs (envs/*.yaml) agree with pyproject.toml, requirements.lock and the code.

Conda channels are unreachable here, so this is a static check (the same functions run on a temp copy to prove
they catch drift):
- every env is valid YAML, every package pinned exactly (conda ``=``/``==``, pip ``==``);
- every pinned version equals the ``==`` pin in ``pyproject.toml`` [project].dependencies and requirements.lock
  (conda names mapped to PyPI names: ``pytorch`` <-> ``torch``; ``python`` must satisfy requires-python);
- every rule that runs something has a ``conda:`` env, and every third-party import of the modules a rule runs
  (``python -m animefaces.X`` / ``animefaces <cmd>`` in its shell command, plus everything those import from the
  package) is provided by that rule's env: directly, or as a dependency of a package the env pins.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("ingest", "vision", "pack", "train", "report")
# conda-forge name -> PyPI name where they differ (everything else: same name on both sides).
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib", "py-opencv": "opencv-python-headless"}
# Pinned in every env but not Python packages of pyproject: the interpreter and the installer of the pip: section.
TOOLCHAIN = {"python", "pip"}
SPEC_CONDA = re.compile(
    r"^(?:[\w.-]+::)?(?P<name>[A-Za-z0-9_.-]+)\s*(?:==|=)\s*(?P<ver>[0-9][^=\s*]*)(?:=(?P<build>\S+))?$"
)
SPEC_PIP = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<ver>[0-9][^\s;]*)$")


# ------------------------------------------------------------------------------------------------ pins
@dataclass
class Env:
    path: Path
    pins: dict[str, str] = field(default_factory=dict)  # canonical PyPI name -> version
    source: dict[str, str] = field(default_factory=dict)  # canonical PyPI name -> the spec as written
    problems: list[str] = field(default_factory=list)


def parse_env(path: Path) -> Env:
    env = Env(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        env.problems.append(f"{path.name}: not valid YAML: {exc}")
        return env
    if not isinstance(doc, dict) or not isinstance(doc.get("dependencies"), list):
        env.problems.append(f"{path.name}: needs a top-level `dependencies:` list")
        return env
    if not doc.get("channels"):
        env.problems.append(f"{path.name}: no `channels:` (name conda-forge explicitly)")

    def add(name: str, ver: str, spec: str) -> None:
        key = canonicalize_name(CONDA_TO_PYPI.get(canonicalize_name(name), name))
        if key in env.pins and env.pins[key] != ver:
            env.problems.append(f"{path.name}: {key} pinned twice ({env.source[key]!r} and {spec!r})")
        env.pins[key], env.source[key] = ver, spec

    for dep in doc["dependencies"]:
        if isinstance(dep, dict) and set(dep) == {"pip"}:
            for spec in dep["pip"] or []:
                m = SPEC_PIP.match(str(spec).strip())
                if not m:
                    env.problems.append(f"{path.name}: pip entry {spec!r} is not an exact `name==version` pin")
                    continue
                add(m["name"], m["ver"], str(spec))
            continue
        m = SPEC_CONDA.match(str(dep).strip())
        if not m:
            env.problems.append(f"{path.name}: {dep!r} is not an exact `name=version` pin")
            continue
        add(m["name"], m["ver"], str(dep))
    if env.pins and "pip" not in env.pins and any(isinstance(d, dict) for d in doc["dependencies"]):
        env.problems.append(f"{path.name}: has a pip: section but does not pin pip itself")
    return env


def pyproject_pins(root: Path) -> tuple[dict[str, str], str, list[str]]:
    """[project].dependencies as {canonical name: version} (all must be ``==``), requires-python, problems."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins, problems = {}, []
    for dep in project["dependencies"]:
        req = Requirement(dep)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != "==":
            problems.append(f"pyproject.toml: {dep!r} is not an exact == pin")
            continue
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins, project.get("requires-python", ""), problems


def lock_pins(root: Path) -> dict[str, str]:
    pins = {}
    for line in (root / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, ver = line.partition("==")
            pins[canonicalize_name(name)] = ver.strip()
    return pins


def check_pins(root: Path) -> list[str]:
    """Every problem with the envs' pins versus pyproject.toml and requirements.lock, one readable line each."""
    problems: list[str] = []
    project, requires_python, bad = pyproject_pins(root)
    problems += bad
    lock = lock_pins(root)
    for name, ver in project.items():
        if name in lock and lock[name] != ver:
            problems.append(f"requirements.lock pins {name}=={lock[name]} but pyproject.toml says =={ver}")
        elif name not in lock:
            problems.append(f"requirements.lock lacks {name} (pyproject.toml pins =={ver})")
    envs = sorted((root / "envs").glob("*.yaml"))
    if not envs:
        problems.append(f"no envs/*.yaml under {root}")
    for path in envs:
        env = parse_env(path)
        problems += env.problems
        for name, ver in env.pins.items():
            where = f"envs/{path.name}: {env.source[name]!r}"
            if name == "python":
                if requires_python and ver not in SpecifierSet(requires_python):
                    problems.append(f"{where} does not satisfy requires-python {requires_python!r}")
                continue
            if name in TOOLCHAIN:
                continue
            if name not in project:
                problems.append(f"{where}: {name} is not a dependency in pyproject.toml (add it there, pinned)")
            elif project[name] != ver:
                problems.append(f"{where} but pyproject.toml pins {name}=={project[name]}")
            if name in lock and lock[name] != ver:
                problems.append(f"{where} but requirements.lock pins {name}=={lock[name]}")
        if "python" not in env.pins:
            problems.append(f"envs/{path.name}: python is not pinned")
    return problems


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
    ``config`` overrides keys of config/config.yaml (like ``--config``)."""
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
        env = parse_env(rule.env)
        provided = set().union(*(_requirements_closure(n) for n in env.pins)) if env.pins else set()
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


def test_env_files_exist_for_every_family():
    assert sorted(p.stem for p in (REPO / "envs").glob("*.yaml")) == sorted(FAMILIES)


def test_pins_agree_with_pyproject_and_lock():
    assert check_pins(REPO) == []


def test_every_rule_has_a_family_env(repo_rules):
    assert [r for r in repo_rules if r.runs_something], "the workflow has no rules that run anything"
    assert check_rules(repo_rules, REPO) == []


def test_rule_imports_are_covered_by_their_env(repo_rules):
    assert check_imports(repo_rules, REPO / "workflow") == []


def test_every_family_env_is_used(repo_rules):
    used = {r.env.stem for r in repo_rules if r.env is not None}
    assert used == set(FAMILIES), f"envs used by no rule: {sorted(set(FAMILIES) - used)}"


def test_train_env_is_a_cuda_pytorch_at_the_torch_pin():
    env = parse_env(REPO / "envs" / "train.yaml")
    project, _, _ = pyproject_pins(REPO)
    assert env.pins["torch"] == project["torch"]
    assert SPEC_CONDA.match(env.source["torch"])["build"] == "cuda*", env.source["torch"]


# ---------------------------------------------------------------- the checker catches drift (temp copies)
@pytest.fixture
def pins_copy(tmp_path) -> Path:
    shutil.copytree(REPO / "envs", tmp_path / "envs")
    for name in ("pyproject.toml", "requirements.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    assert check_pins(tmp_path) == []
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_drift_in_one_env_is_reported(pins_copy):
    _edit(pins_copy / "envs" / "vision.yaml", "pillow=11.3.0", "pillow=11.2.0")
    problems = check_pins(pins_copy)
    assert len(problems) == 2, problems  # against pyproject and against the lock, vision.yaml only
    assert all("vision.yaml" in p and "pillow" in p for p in problems)


def test_drift_in_a_pip_section_is_reported(pins_copy):
    _edit(pins_copy / "envs" / "vision.yaml", "opencv-python-headless==4.14.0.94", "opencv-python-headless==4.13.0.92")
    problems = check_pins(pins_copy)
    assert problems and all("opencv-python-headless" in p for p in problems), problems


def test_drift_in_pyproject_is_reported_for_every_env_and_the_lock(pins_copy):
    _edit(pins_copy / "pyproject.toml", '"numpy==2.4.6"', '"numpy==2.4.5"')
    problems = check_pins(pins_copy)
    assert any(p.startswith("requirements.lock pins numpy==2.4.6") for p in problems), problems
    assert {f"{f}.yaml" for f in FAMILIES} == {m for p in problems for m in re.findall(r"envs/(\w+\.yaml)", p)}


def test_drift_in_the_lock_is_reported(pins_copy):
    _edit(pins_copy / "requirements.lock", "h5py==3.16.0", "h5py==3.15.1")
    problems = check_pins(pins_copy)
    assert any("requirements.lock pins h5py==3.15.1 but pyproject.toml" in p for p in problems), problems
    assert any("pack.yaml" in p and "h5py" in p for p in problems), problems


def test_torch_pytorch_mapping_is_checked(pins_copy):
    _edit(pins_copy / "envs" / "train.yaml", "pytorch=2.13.0=cuda*", "pytorch=2.12.0=cuda*")
    assert any("pytorch=2.12.0" in p and "torch==2.13.0" in p for p in check_pins(pins_copy))


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        ("  - h5py=3.16.0", "  - h5py", "not an exact"),
        ("  - h5py=3.16.0", "  - h5py>=3.16", "not an exact"),
        ("  - h5py=3.16.0", "  - h5py=3.16.0\n  - scipy=1.17.1", "not a dependency in pyproject"),
        ("  - python=3.11.7", "  - python=3.12.1", "requires-python"),
    ],
)
def test_unpinned_unknown_or_wrong_python_is_reported(pins_copy, old, new, complaint):
    _edit(pins_copy / "envs" / "pack.yaml", old, new)
    assert any(complaint in p and "pack.yaml" in p for p in check_pins(pins_copy)), check_pins(pins_copy)


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
