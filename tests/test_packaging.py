"""What ships: the Lambda zip `chalice package` builds, and the trainer image's entry point.

The package test builds from a copy holding only what Chalice itself ships (app.py,
chalicelib/, vendor/, requirements.txt, .chalice/), so a top-level package that works
in the repository but is missing from the zip fails here, not in Lambda.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHALICE = ROOT / ".venv" / "bin" / "chalice"
TRAINER = ROOT / "containers" / "trainer"
HEAVY = ("torch", "torchvision", "numpy", "matplotlib", "timm", "torchmetrics", "PIL", "safetensors")
# Packages the trainer image copies beside `trainer` (see containers/trainer/Dockerfile).
IMAGE_PACKAGES = {"trainer", "dataset_fetcher", "contracts", "outbound"}


def _chalice_project_copy(tmp_path: Path) -> Path:
    """The project `make deploy` hands to Chalice: the shipped code and the stage config
    rendered from a recorded describe-stacks (tests/aws/fixtures), as for a real account."""
    from tests.aws.stack_fixture import cli, rendered_config

    return cli.chalice_app.write_project(tmp_path / "project", rendered_config())


@pytest.fixture(scope="module")
def dev_package(tmp_path_factory):
    if not (ROOT / "app.py").exists():
        pytest.skip("app.py does not exist yet: nothing for `chalice package` to build")
    tmp = tmp_path_factory.mktemp("chalice")
    project = _chalice_project_copy(tmp)
    out = tmp / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFACTORY_", "PYTHONPATH"))}
    env.update(AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    result = subprocess.run(
        [
            str(CHALICE),
            "--project-dir",
            str(project),
            "package",
            "--stage",
            "dev",
            "--pkg-format",
            "cloudformation",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=project,
    )
    assert result.returncode == 0, f"chalice package failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return out


def test_lambda_zip_holds_the_app_and_nothing_heavy(dev_package):
    with zipfile.ZipFile(dev_package / "deployment.zip") as archive:
        names = archive.namelist()
    assert "app.py" in names
    assert "chalicelib/__init__.py" in names
    heavy = sorted({part for name in names for part in Path(name).parts if part in HEAVY})
    assert not heavy, f"The API Lambda must stay lean; the zip contains: {heavy}"
    size_mb = (dev_package / "deployment.zip").stat().st_size / 1e6
    assert size_mb < 20, f"deployment.zip is {size_mb:.1f} MB"


def test_lambda_zip_imports_on_its_own_without_torch(dev_package, tmp_path):
    """Unzipped alone (as Lambda sees it, boto3 from the runtime), `import app` works and
    pulls in none of the heavy libraries."""
    unpacked = tmp_path / "lambda"
    with zipfile.ZipFile(dev_package / "deployment.zip") as archive:
        archive.extractall(unpacked)
    probe = (
        "import sys\n"
        "sys.path.insert(0, '.')\n"
        "import app\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "assert not heavy, heavy\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIFACTORY_", "PYTHONPATH"))}
    env.update(
        AIFACTORY_STAGE="dev",
        AIFACTORY_TABLE="t",
        AIFACTORY_BUCKET="b",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    result = subprocess.run(
        [sys.executable, "-P", "-c", probe],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"The packaged app does not import on its own:\n{result.stderr[-4000:]}"


def test_template_uses_the_stage_role_and_settings(dev_package):
    from tests.aws.stack_fixture import rendered_config

    template = json.loads((dev_package / "sam.json").read_text())
    config = rendered_config()
    dev = config["stages"]["dev"]
    handler = template["Resources"]["APIHandler"]["Properties"]
    assert handler["Role"] == dev["iam_role_arn"]
    assert handler["Timeout"] == 60 and handler["MemorySize"] == 512
    assert handler["Environment"]["Variables"]["AIFACTORY_STAGE"] == "dev"
    assert handler["Environment"]["Variables"]["AIFACTORY_ALLOW_PRIVATE_URLS"] == "false"
    assert not any(r["Type"] == "AWS::IAM::Role" for r in template["Resources"].values())


def test_chalice_config_names_every_aws_setting():
    """The stage config `make deploy` renders (the committed one is its account-free template)."""
    from tests.aws.stack_fixture import rendered_config

    config = rendered_config()
    assert config["app_name"] == "ai-factory"
    assert config["stages"]["local"]["environment_variables"]["AIFACTORY_STAGE"] == "local"
    needed = {
        "AIFACTORY_STAGE",
        "AIFACTORY_TABLE",
        "AIFACTORY_BUCKET",
        "AIFACTORY_ARTIFACT_PREFIX",
        "AIFACTORY_SAGEMAKER_ROLE_ARN",
        "AIFACTORY_TRAINER_IMAGE",
        "AIFACTORY_ALLOWED_IMAGES",
        "AIFACTORY_ALLOWED_INSTANCE_TYPES",
        "AIFACTORY_MAX_INSTANCE_COUNT",
        "AIFACTORY_ALLOW_PRIVATE_URLS",
        "AIFACTORY_PUBLIC_URL",
    }
    for stage in ("dev", "prod"):
        settings = config["stages"][stage]
        assert needed <= set(settings["environment_variables"]), stage
        assert settings["environment_variables"]["AIFACTORY_STAGE"] == stage
        assert settings["environment_variables"]["AIFACTORY_ALLOW_PRIVATE_URLS"] == "false"
        assert settings["manage_iam_role"] is False and settings["iam_role_arn"].startswith("arn:aws:iam::")
        trainer_image = settings["environment_variables"]["AIFACTORY_TRAINER_IMAGE"]
        allowed = settings["environment_variables"]["AIFACTORY_ALLOWED_IMAGES"].split(",")
        assert any(trainer_image.startswith(prefix) for prefix in allowed), (
            f"{stage} cannot run its own trainer"
        )


# --- trainer image ---------------------------------------------------------------------


def test_train_script_execs_the_trainer_module(tmp_path):
    script = TRAINER / "train"
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env sh"
    assert 'exec python -m trainer "$@"' in lines
    assert os.access(script, os.X_OK), "SageMaker runs `train` directly: it must be executable"
    # Run it for real: with no job.json the trainer must fail the SageMaker way.
    env = dict(
        os.environ,
        AIFACTORY_OPT_ML=str(tmp_path),
        PATH=f"{sys.prefix}/bin:{os.environ['PATH']}",
        PYTHONPATH=f"{TRAINER}{os.pathsep}{ROOT}",
    )
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    failure = (tmp_path / "output" / "failure").read_text()
    assert "job.json" in failure


def _dockerfile_copies() -> list[tuple[str, str]]:
    text = (TRAINER / "Dockerfile").read_text()
    return [tuple(m.groups()) for m in re.finditer(r"^COPY\s+(?:--\S+\s+)*(\S+)\s+(\S+)\s*$", text, re.M)]


def test_dockerfile_copies_what_the_image_needs():
    text = (TRAINER / "Dockerfile").read_text()
    copies = dict(_dockerfile_copies())
    for source in copies:
        assert (ROOT / source).exists(), (
            f"Dockerfile copies {source}, which does not exist (context: repo root)"
        )
    assert copies["containers/trainer/train"] == "/usr/local/bin/train"
    assert copies["containers/trainer/trainer/"] == "/opt/ml/code/trainer/"
    assert {Path(dest).name for dest in copies.values()} >= IMAGE_PACKAGES
    assert re.search(r"^ENV .*PYTHONUNBUFFERED=1", text, re.M | re.S)
    assert re.search(r"^WORKDIR /opt/ml/code$", text, re.M)
    ignore = (TRAINER / "Dockerfile.dockerignore").read_text().splitlines()
    for source in copies:
        assert f"!{source}" in ignore, f"Dockerfile.dockerignore leaves out {source}"


def _imported_modules(paths: list[Path]) -> set[str]:
    modules: set[str] = set()
    for path in paths:
        for file in path.rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text(), str(file))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    return modules


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _with_dependencies(distributions: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(distributions)
    while todo:
        name = _normal(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo.extend(re.split(r"[\s;<>=!~\[(]", r, maxsplit=1)[0] for r in requires if "extra ==" not in r)
    return seen


def test_trainer_requirements_cover_every_import():
    """Each third-party module the image's code imports (lazily or not) is pinned in
    containers/trainer/requirements.txt or comes with a pinned package."""
    pinned = {
        _normal(line.split("==")[0])
        for line in (TRAINER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    available = _with_dependencies(pinned)
    owners = md.packages_distributions()
    modules = _imported_modules(
        [
            TRAINER / "trainer",
            ROOT / "dataset_fetcher",
            ROOT / "contracts",
            ROOT / "outbound",
        ]
    )
    third_party = {m for m in modules if m not in sys.stdlib_module_names and m not in IMAGE_PACKAGES}
    missing = {}
    for module in sorted(third_party):
        distributions = {_normal(d) for d in owners.get(module, [])}
        if not distributions & available:
            missing[module] = sorted(distributions) or ["<not installed>"]
    assert not missing, f"Add to containers/trainer/requirements.txt: {missing}"


# --- the package as AWS sees it -------------------------------------------------------------


def test_cfn_lint_finds_nothing_in_the_package(dev_package):
    """The SAM template Chalice wrote (the API, its routes, the event and schedule handlers)."""
    from cfnlint.api import ManualArgs, lint_file

    findings = lint_file(dev_package / "sam.json", config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(finding) for finding in findings] == []


def _lambda_site(target: Path) -> Path:
    """A site directory holding only requirements.txt's distributions and the runtime's boto3
    (with their dependencies), linked from this venv: what the Lambda's Python can import."""
    pinned = {
        line.split("==")[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    target.mkdir()
    for name in sorted(_with_dependencies(pinned | {"boto3"})):
        distribution = md.distribution(name)
        tops = {Path(str(f)).parts[0] for f in distribution.files or []}
        for top in tops:
            source = Path(distribution.locate_file(top))
            if top.endswith((".pth",)) or top == ".." or not source.exists():
                continue
            if not (target / top).exists():
                (target / top).symlink_to(source)
    return target


def _routes_probe(site: Path) -> str:
    return (
        "import json, sys\n"
        f"sys.path[:0] = ['.', {str(site)!r}]\n"
        "import app\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "assert not heavy, heavy\n"
        "outside = sorted({getattr(m, '__file__', None) or '' for m in list(sys.modules.values())}\n"
        "    - {''})\n"
        "outside = [f for f in outside if 'site-packages' in f and not f.startswith(sys.path[1])]\n"
        "assert not outside, outside[:5]\n"
        "print(json.dumps(sorted([path, sorted(methods)] for path, methods in app.app.routes.items())))\n"
    )


def test_the_zip_imports_in_a_clean_environment_and_registers_every_route(dev_package, tmp_path):
    """No site-packages (python -S): only the zip, requirements.txt and boto3 as the runtime has it."""
    unpacked = tmp_path / "lambda"
    with zipfile.ZipFile(dev_package / "deployment.zip") as archive:
        archive.extractall(unpacked)
    site = _lambda_site(tmp_path / "site")
    env = {
        "PATH": os.environ["PATH"],
        "AIFACTORY_STAGE": "dev",
        "AIFACTORY_TABLE": "t",
        "AIFACTORY_BUCKET": "b",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", _routes_probe(site)],
        cwd=unpacked,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"The zip does not import on the Lambda's packages alone:\n{result.stderr[-4000:]}"
    )
    packaged = json.loads(result.stdout.strip().splitlines()[-1])
    import app

    expected = sorted([path, sorted(methods)] for path, methods in app.app.routes.items())
    assert packaged == expected
    assert ["/api/version", ["GET"]] in packaged


def test_the_clean_environment_really_lacks_the_dev_packages(dev_package, tmp_path):
    """The probe's environment cannot import what only the dev venv has (it would hide a missing pin)."""
    site = _lambda_site(tmp_path / "site")
    probe = f"import sys\nsys.path[:0] = [{str(site)!r}]\nimport boto3\nimport moto\n"
    result = subprocess.run([sys.executable, "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "No module named 'moto'" in result.stderr
