"""Bundles for the three clouds: layout, slimming, sizes, the secret scan, refusals, and proof that a
bundle answers an encrypted request on its own in an isolated Python 3.12. Also the AWS template
``osls package`` writes offline, checked with cfn-lint."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fixtures.requests import ROWS, make_keys, seal

from core.engine import Engine
from litefaas import paths
from litefaas.cli import package as package_cmd
from litefaas.packaging import bundle as bundler
from litefaas.packaging import elf_check, lambda_runtime, proof, slimming, targets
from litefaas.packaging import secret_scan as scan
from litefaas.packaging.targets import PackageError, Target

ROOT = paths.ROOT
OSLS = ROOT / "node_modules" / "osls" / "bin" / "serverless.js"
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
AWS_TARGET_ZIPPED = 25 * 1000 * 1000
AWS_TARGET_UNZIPPED = 80 * 1000 * 1000
PYTHON312 = proof.find_python("3.12")
needs_python312 = pytest.mark.skipif(
    PYTHON312 is None,
    reason="no working python3.12 here (PATH or pyenv): the isolated-interpreter proof of the bundles is skipped",
)
needs_osls = pytest.mark.skipif(
    shutil.which("node") is None or not OSLS.is_file(),
    reason="node or node_modules/osls is missing: run `npm ci` (or `make setup`)",
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    return tmp_path_factory.mktemp("dist")


@pytest.fixture(scope="module")
def bundles(dist):
    """The x86_64 bundle of each cloud (wheels from the cache under build/wheels after the first run)."""
    return {cloud: bundler.build_bundle(Target(cloud), dist) for cloud in targets.CLOUDS}


def names(bundle: bundler.Bundle) -> list[str]:
    with zipfile.ZipFile(bundle.path) as archive:
        return archive.namelist()


# ------------------------------------------------------------------------------------------- target


def test_target_rejects_what_the_clouds_do_not_run():
    """A cloud, architecture or Python version the clouds do not run is a PackageError naming it."""
    with pytest.raises(PackageError, match="unknown cloud 'ibm'"):
        Target("ibm")
    with pytest.raises(PackageError, match="unknown architecture"):
        Target("aws", "riscv64")
    with pytest.raises(PackageError, match="unsupported Python"):
        Target("aws", python="3.9")
    for cloud in ("gcp", "azure"):
        with pytest.raises(PackageError, match="x86_64 only"):
            Target(cloud, "arm64")


def test_platform_tags_cover_every_manylinux_the_lambda_glibc_accepts():
    """AWS platform tags list every manylinux the Lambda glibc (2.34) accepts, and none newer."""
    # pip matches platform tags exactly: LiteRT's cp312 wheel is manylinux_2_27 only
    tags = Target("aws", "arm64").platform_tags
    assert "manylinux_2_27_aarch64" in tags
    assert "manylinux_2_17_aarch64" in tags
    assert "manylinux2014_aarch64" in tags
    assert "manylinux_2_34_aarch64" in tags
    assert "manylinux_2_35_aarch64" not in tags  # Lambda's Amazon Linux 2023 has glibc 2.34
    assert all(tag.endswith("_x86_64") for tag in Target("aws").platform_tags)


def test_pins_come_from_constraints_and_the_cli_offers_what_the_builder_accepts():
    """Runtime pins come from the constraints; the CLI offers exactly the builder's clouds, archs and Pythons."""
    pins = targets.read_pins()
    runtime = targets.litert_runtime(pins)
    assert runtime.requirements == tuple(
        f"{name}=={pins[targets.normalize(name)]}" for name in targets.RUNTIME_DISTRIBUTIONS
    )
    assert package_cmd.CLOUDS == targets.CLOUDS
    assert package_cmd.ARCHITECTURES == targets.ARCHITECTURES
    assert package_cmd.PYTHON_VERSIONS == targets.PYTHON_VERSIONS


def test_slimming_keeps_only_what_the_interpreter_loads():
    """Slimming keeps what the interpreter loads and the licenses, and drops converters, tests and headers."""
    litert = slimming.SLIMMING["ai-edge-litert"]
    assert litert.keeps("ai_edge_litert/interpreter.py")
    assert litert.keeps("ai_edge_litert/_pywrap_litert_interpreter_wrapper.so")
    assert litert.keeps("ai_edge_litert/libpywrap_litert_common.so")
    assert litert.keeps("ai_edge_litert-2.3.0.dist-info/licenses/LICENSE")
    for dropped in (
        "ai_edge_litert/libLiteRt.so",
        "ai_edge_litert/libLiteRtWebGpuAccelerator.so",
        "ai_edge_litert/_pywrap_litert_converter.so",
        "ai_edge_litert/compiled_model.py",
        "ai_edge_litert/aot/aot_compile.py",
        "ai_edge_litert-2.3.0.dist-info/RECORD",
    ):
        assert not litert.keeps(dropped), dropped
    numpy = slimming.SLIMMING["numpy"]
    assert numpy.keeps("numpy/_core/_multiarray_umath.cpython-312-x86_64-linux-gnu.so")
    assert numpy.keeps("numpy/typing/__init__.py")  # core imports numpy.typing
    for dropped in (
        "numpy/_core/tests/test_api.py",
        "numpy/_core/include/numpy/ndarrayobject.h",
        "numpy/__init__.pyi",
        "numpy/f2py/__init__.py",
        "numpy/_core/_simd.cpython-312-x86_64-linux-gnu.so",
        "numpy/random/mtrand.cpython-312-x86_64-linux-gnu.so",
    ):
        assert not numpy.keeps(dropped), dropped
    cffi = slimming.SLIMMING["cffi"]
    assert cffi.keeps("_cffi_backend.cpython-312-x86_64-linux-gnu.so")
    assert not cffi.keeps("cffi/api.py")


# ------------------------------------------------------------------------------------------ bundles


def test_aws_bundle_layout_and_sizes(bundles):
    """The AWS bundle holds only the AWS handler, core, the selected model and slimmed packages, within the size targets."""
    bundle = bundles["aws"]
    files = names(bundle)
    assert bundle.path.name == "litefaas-aws-py3.12-x86_64.zip"
    assert {"handlers/aws/handler.py", "core/app.py", "core/engine.py", "numpy/__init__.py"} <= set(files)
    assert not any(
        name.startswith(("handlers/gcp", "handlers/azure", "litefaas/", "tests/")) for name in files
    )
    model = sorted(name for name in files if name.startswith("model/"))
    manifest = json.loads((bundler.DEFAULT_MODEL / "manifest.json").read_text())
    assert model == [
        f"model/artifacts/breast_cancer_mlp/{manifest['file']}",
        "model/artifacts/breast_cancer_mlp/manifest.json",
    ]
    litert = sorted(name for name in files if name.startswith("ai_edge_litert/"))
    assert [Path(name).name for name in litert] == [
        "__init__.py",
        "_pywrap_litert_interpreter_wrapper.so",
        "interpreter.py",
        "libpywrap_litert_common.so",
        "metrics_interface.py",
        "metrics_portable.py",
    ]
    unwanted = ("/tests/", "__pycache__", ".pyc", ".pyi", ".h", "/include/")
    packages = [name for name in files if ".dist-info/" not in name]  # licenses stay
    assert not [name for name in packages if any(part in name for part in unwanted)]
    assert not [name for name in files if name.startswith(("cffi/", "pycparser", "protobuf", "flatbuffers"))]
    print(f"aws x86_64: {bundle.zipped_bytes:,} bytes zipped, {bundle.unzipped_bytes:,} unzipped")
    assert bundle.zipped_bytes <= AWS_TARGET_ZIPPED
    assert bundle.unzipped_bytes <= AWS_TARGET_UNZIPPED


def test_gcp_bundle_has_main_at_the_root_and_names_functions_framework(bundles):
    """The GCP bundle has main.py at its root, no handlers folder, and requires only the pinned
    functions-framework and the parser and loop its ASGI server runs fastest with."""
    files = names(bundles["gcp"])
    assert {"main.py", "requirements.txt", "core/app.py", "numpy/__init__.py"} <= set(files)
    assert not any(name.startswith("handlers/") for name in files)
    with zipfile.ZipFile(bundles["gcp"].path) as archive:
        requirements = archive.read("requirements.txt").decode()
    pins = targets.read_pins()
    assert [line for line in requirements.splitlines() if not line.startswith("#")] == [
        f"functions-framework=={pins['functions-framework']}",
        f"httptools=={pins['httptools']}",
        f"uvloop=={pins['uvloop']}",
    ]


def test_azure_bundle_puts_packages_under_python_packages(bundles):
    """The Azure bundle puts every package under .python_packages and none at the root."""
    files = set(names(bundles["azure"]))
    assert {"function_app.py", "host.json", "requirements.txt", "core/app.py"} <= files
    site = ".python_packages/lib/site-packages/"
    assert {
        f"{site}numpy/__init__.py",
        f"{site}ai_edge_litert/interpreter.py",
        f"{site}cryptography/__init__.py",
    } <= files
    assert not any(name.startswith(("numpy/", "ai_edge_litert/")) for name in files)


def test_bundles_are_reproducible_and_reused(bundles, dist, tmp_path):
    """An unchanged bundle is reused, not rebuilt; its entries are sorted and carry a fixed timestamp."""
    bundle = bundles["aws"]
    before = bundle.path.stat().st_mtime_ns
    again = bundler.build_bundle(Target("aws"), dist)
    assert again.path.stat().st_mtime_ns == before  # same inputs: kept, not rebuilt
    with zipfile.ZipFile(bundle.path) as archive:
        infos = archive.infolist()
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in infos)
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)


# ---------------------------------------------------------------------------------- isolated proof


@needs_python312
@pytest.mark.parametrize(
    ("cloud", "server"), [(cloud, "") for cloud in targets.CLOUDS] + [("gcp", "wsgi")], ids=lambda v: v or "-"
)
def test_bundle_answers_an_encrypted_request_alone_in_python312(bundles, cloud, server, tmp_path):
    # GIVEN the bundle unpacked, and (gcp, azure) the SDK the platform installs from its requirements.txt
    root = bundler.unpack(bundles[cloud].path, tmp_path / "bundle")
    layer = proof.platform_layer(Target(cloud))
    keys = make_keys()
    sealed = seal(keys, inputs=ROWS[:4])
    # WHEN python3.12 -I -S, which sees nothing but these folders, answers a request sealed here
    # (gcp as deployed: functions-framework's ASGI app; and its WSGI app for a user who picks it)
    env = {"LITEFAAS_PRIVATE_KEYS": keys.private_json}
    if cloud == "gcp" and server != "wsgi":
        env["FUNCTION_USE_ASGI"] = "true"
    result = proof.probe_bundle(root, cloud, PYTHON312, sealed.body, env, layer)
    # THEN the answer decrypts here to the model's own outputs, computed by the bundle's packages
    assert result.status == 200
    assert result.python.startswith("3.12.")
    outputs = sealed.open(result.body)["outputs"]
    expected = Engine.from_dir().predict({"features": np.asarray(ROWS[:4], dtype=np.float32)})["probability"]
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    for module, origin in result.origins.items():
        assert Path(origin).is_relative_to(root), (module, origin)


@needs_python312
def test_package_command_verifies_a_bundle(dist, capsys):
    """`package --verify` builds the AWS bundle, reports it within the targets, and verifies encrypted rows."""
    code = package_cmd.main(["package", "--cloud", "aws", "--out", str(dist), "--verify"])
    out = capsys.readouterr().out
    assert code == 0
    assert "within the targets" in out
    assert "verified: 3 encrypted rows" in out
    if lambda_runtime.can_sandbox() is None:  # as root with mount namespaces: also as Lambda runs it
        assert "under awslambdaric as Lambda runs it" in out


def test_python312_lookup_says_none_rather_than_a_broken_shim(tmp_path, monkeypatch):
    """A python3.12 shim that cannot run is reported as no Python 3.12."""
    shim = tmp_path / "python3.12"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.12: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert proof.find_python("3.12") is None


# -------------------------------------------------------------------------------------- secret scan


def test_scan_finds_pem_keys_key_sets_and_the_environment_keys():
    """The secret scan finds PEM private keys, private key sets and the environment's own keys, but not a bare PEM header."""
    keys = make_keys()
    pem = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert scan.scan_bytes(b"prefix\n" + pem) == ["PEM private key"]
    assert scan.scan_bytes(keys.private_json.encode()) == ["litefaas private key set"]
    needles = scan.known_private_keys({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    hidden = b"\x00binary " + keys.private_b64[0].encode() + b" more"
    assert scan.scan_bytes(hidden, needles) == ["a private key of LITEFAAS_PRIVATE_KEYS"]
    assert scan.scan_bytes(b"-----BEGIN PRIVATE KEY-----", needles) == []  # a header alone is no key


def test_repository_service_files_hold_no_private_key():
    """No service file or core module in the repository holds a private key."""
    files = [ROOT / "serverless.yml", *(ROOT / "providers").glob("*.yml"), *(ROOT / "core").glob("*.py")]
    assert scan.scan_paths(files, base=ROOT, needles=[]) == []


# -------------------------------------------------------------------------------------------- refusals


def test_missing_artifact_is_refused_and_nothing_is_written(tmp_path):
    """A missing model artifact is a PackageError and nothing is written."""
    out = tmp_path / "dist"
    with pytest.raises(PackageError, match="no model artifact"):
        bundler.build_bundle(Target("aws"), out, model_dir=tmp_path / "nowhere")
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_application_insights_is_refused_outside_azure(cloud, tmp_path):
    """The Application Insights exporter goes into an Azure bundle only; elsewhere it is refused."""
    with pytest.raises(PackageError, match="Application Insights is Azure's"):
        bundler.build_bundle(Target(cloud), tmp_path / "dist", app_insights=True)
    assert not (tmp_path / "dist").exists()


def test_entry_points_are_kept_only_for_a_distribution_found_by_them():
    """Slimming drops entry_points.txt, unless asked to keep it (OpenTelemetry loads its parts by it)."""
    path = "opentelemetry_api-1.45.1.dist-info/entry_points.txt"
    assert not slimming.Slimming().keeps(path)
    assert slimming.Slimming(entry_points=True).keeps(path)
    assert slimming.Slimming(entry_points=True).keeps("opentelemetry/trace/__init__.py")


def test_private_key_in_the_model_folder_is_refused_and_nothing_is_written(tmp_path):
    # GIVEN a model artifact whose manifest carries a private key set
    model = tmp_path / "model"
    shutil.copytree(bundler.DEFAULT_MODEL, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["notes"] = json.loads(make_keys().private_json)
    (model / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "dist"
    # WHEN it is packaged THEN the builder refuses, naming the file, and leaves no bundle
    with pytest.raises(PackageError, match=r"refusing .*manifest\.json \(litefaas private key set\)"):
        bundler.build_bundle(Target("aws"), out, model_dir=model)
    assert list(out.iterdir()) == []


def test_package_command_exit_codes(tmp_path, capsys):
    """Each refused package command exits 2 with its reason on stderr and writes nothing."""
    with pytest.raises(SystemExit) as exited:
        package_cmd.main(["package", "--cloud", "ibm"])
    assert exited.value.code == 2
    assert "invalid choice: 'ibm'" in capsys.readouterr().err
    code = package_cmd.main(["package", "--cloud", "gcp", "--arch", "arm64", "--out", str(tmp_path)])
    assert code == 2
    assert "gcp runs Python functions on x86_64 only" in capsys.readouterr().err
    code = package_cmd.main(
        ["package", "--cloud", "aws", "--model", str(tmp_path / "none"), "--out", str(tmp_path)]
    )
    assert code == 2
    assert "litefaas package: no model artifact" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------- AWS template, lint


def osls_package(dist: Path, out: Path, *extra: str) -> dict:
    env = {name: value for name, value in os.environ.items() if not name.startswith("LITEFAAS_")}
    env |= {
        "CLOUD": "aws",
        "SLS_TELEMETRY_DISABLED": "1",
        "LITEFAAS_DIST": str(dist),
        "LITEFAAS_PYTHON": sys.executable,
    }
    argv = ["node", str(OSLS), "package", "--package", str(out), *extra]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((out / "cloudformation-template-update-stack.json").read_text())


@needs_osls
def test_osls_package_offline_writes_a_template_cfn_lint_accepts(bundles, dist, tmp_path):
    # GIVEN no credentials at all: osls package runs offline and names the bundle as the artifact
    template = osls_package(dist, tmp_path / "sls")
    resources = template["Resources"]
    function = resources["PredictLambdaFunction"]["Properties"]
    assert function["Code"]["S3Key"].endswith("/litefaas-aws-py3.12-x86_64.zip")
    assert (function["Runtime"], function["Architectures"], function["Handler"]) == (
        "python3.12",
        ["x86_64"],
        "handlers/aws/handler.handler",
    )
    assert (function["MemorySize"], function["Timeout"]) == (512, 10)
    assert "ReservedConcurrentExecutions" not in function
    # the keys: a Secrets Manager reference CloudFormation resolves at deploy, never a value
    variables = function["Environment"]["Variables"]
    assert (
        variables["LITEFAAS_PRIVATE_KEYS"]
        == "{{resolve:secretsmanager:litefaas-dev-private-keys:SecretString}}"
    )
    assert scan.scan_paths([tmp_path / "sls"], needles=[]) == []
    # HTTP API routes, a Function URL, log retention, a role that can only write its logs
    routes = sorted(
        r["Properties"]["RouteKey"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Route"
    )
    assert routes == [
        "GET /.well-known/ohttp-gateway",
        "GET /health",
        "GET /keys",
        "GET /v2",
        "GET /v2/{proxy+}",
        "OPTIONS /.well-known/ohttp-gateway",
        "OPTIONS /health",
        "OPTIONS /keys",
        "OPTIONS /predict",
        "OPTIONS /v2/{proxy+}",
        "POST /.well-known/ohttp-gateway",
        "POST /predict",
        "POST /v2/{proxy+}",
    ]
    assert resources["PredictLambdaFunctionUrl"]["Properties"]["AuthType"] == "NONE"
    assert resources["PredictLogGroup"]["Properties"]["RetentionInDays"] == 14
    statements = resources["IamRoleLambdaExecution"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    actions = {action for statement in statements for action in statement["Action"]}
    assert actions <= {"logs:CreateLogStream", "logs:CreateLogGroup", "logs:TagResource", "logs:PutLogEvents"}
    # WHEN cfn-lint checks it THEN it passes (W3005: osls's redundant DependsOn)
    if not CFN_LINT.is_file():
        pytest.skip("cfn-lint is not installed in this environment (the dev extra has it)")
    lint = subprocess.run(
        [
            str(CFN_LINT),
            "--ignore-checks",
            "W3005",
            "--",
            str(tmp_path / "sls" / "cloudformation-template-update-stack.json"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


@needs_osls
def test_stage_and_concurrency_are_parameters(bundles, dist, tmp_path):
    """Stage, region, memory, concurrency and the key secret's name reach the template as parameters."""
    template = osls_package(
        dist,
        tmp_path / "sls",
        "--stage",
        "prod",
        "--region",
        "eu-west-1",
        "--param",
        "memorySize=1024",
        "--param",
        "reservedConcurrency=20",
        "--param",
        "provisionedConcurrency=2",
        "--param",
        "privateKeysSecret=prod/litefaas-keys",
    )
    resources = template["Resources"]
    function = resources["PredictLambdaFunction"]["Properties"]
    assert (function["FunctionName"], function["MemorySize"], function["ReservedConcurrentExecutions"]) == (
        "litefaas-prod-predict",
        1024,
        20,
    )
    aliases = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    assert aliases[0]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
    variables = function["Environment"]["Variables"]
    assert variables["LITEFAAS_PRIVATE_KEYS"] == "{{resolve:secretsmanager:prod/litefaas-keys:SecretString}}"


# ---------------------------------------------------------------------------------- ELF files


def test_every_elf_file_of_every_bundle_fits_its_platform(bundles, tmp_path):
    # GIVEN each cloud's bundle WHEN its ELF files are read
    newest = {}
    for cloud, built in bundles.items():
        root = bundler.unpack(built.path, tmp_path / cloud)
        found = list(elf_check.elf_files(root))
        # THEN each is an x86_64 64-bit file needing at most the platform's glibc 2.34
        assert found and all(needs.machine == elf_check.MACHINES["x86_64"] for _, needs in found)
        newest[cloud] = max(needs.glibc_minor or 0 for _, needs in found)
        assert elf_check.check_tree(root, Target(cloud)) == len(found)
    assert newest == {"aws": 34, "gcp": 34, "azure": 34}  # cryptography's Rust core: no margin
    # AND the arm64 (Graviton) bundle's are aarch64 files within the same glibc
    arm = bundler.build_bundle(Target("aws", "arm64"), tmp_path / "arm-dist")
    arm_root = bundler.unpack(arm.path, tmp_path / "arm")
    arm_files = list(elf_check.elf_files(arm_root))
    assert arm_files and {needs.machine for _, needs in arm_files} == {elf_check.MACHINES["aarch64"]}
    assert max(needs.glibc_minor or 0 for _, needs in arm_files) <= 34


def _patched(source: Path, destination: Path, old: bytes, new: bytes, at: int | None = None) -> Path:
    data = bytearray(source.read_bytes())
    if at is None:
        index = data.index(old)
        data[index : index + len(old)] = new
    else:
        data[at : at + len(new)] = new
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_bytes(bytes(data))
    return destination


def test_a_file_needing_a_newer_glibc_or_another_machine_is_refused_by_name(bundles, tmp_path):
    root = bundler.unpack(bundles["aws"].path, tmp_path / "aws")
    library = next(path for path, needs in elf_check.elf_files(root) if needs.glibc_minor == 27)
    # GIVEN a copy that needs GLIBC_2.38 (the version string patched, same length)
    newer = tmp_path / "newer"
    _patched(library, newer / "pkg" / "fast.so", b"GLIBC_2.27", b"GLIBC_2.38")
    with pytest.raises(targets.PackageError, match=r"pkg/fast\.so needs GLIBC_2\.38.*glibc 2\.34"):
        elf_check.check_tree(newer, Target("aws"))
    # AND a copy whose ELF header says aarch64, in an x86_64 bundle (and the reverse)
    other = tmp_path / "other"
    _patched(library, other / "pkg" / "arm.so", b"", struct.pack("<H", 183), at=18)
    with pytest.raises(targets.PackageError, match=r"pkg/arm\.so is built for another machine"):
        elf_check.check_tree(other, Target("aws"))
    with pytest.raises(targets.PackageError, match=r"is built for another machine"):
        elf_check.check_tree(root, Target("aws", "arm64"))
    assert elf_check.check_tree(other, Target("aws", "arm64")) == 1


@needs_osls
def test_snapstart_publishes_a_version_and_routes_every_event_to_its_alias(bundles, dist, tmp_path):
    # GIVEN --param snapStart=true WHEN osls packages the service offline
    template = osls_package(dist, tmp_path / "sls", "--param", "snapStart=true")
    resources = template["Resources"]
    # THEN the function applies SnapStart to its published versions, with a /tmp SnapStart allows
    function = resources["PredictLambdaFunction"]["Properties"]
    assert function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert function["EphemeralStorage"] == {"Size": 512}
    (alias,) = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Alias"]
    (version,) = [name for name, r in resources.items() if r["Type"] == "AWS::Lambda::Version"]
    assert alias["FunctionVersion"] == {"Fn::GetAtt": [version, "Version"]} and alias["Name"] == "snapstart"
    # AND every front door invokes the alias, never $LATEST (which SnapStart does not apply to)
    qualified = {"Fn::Join": [":", [{"Fn::GetAtt": ["PredictLambdaFunction", "Arn"]}, "snapstart"]]}
    integrations = [
        r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGatewayV2::Integration"
    ]
    assert integrations and all(i["IntegrationUri"] == qualified for i in integrations)
    assert resources["PredictLambdaFunctionUrl"]["Properties"]["TargetFunctionArn"] == qualified
    permissions = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert permissions and all(p["FunctionName"] == qualified for p in permissions)
    if CFN_LINT.is_file():
        path = tmp_path / "sls" / "cloudformation-template-update-stack.json"
        lint = subprocess.run(
            [str(CFN_LINT), "--ignore-checks", "W3005", "--", str(path)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    # AND without it the function has no SnapStart and no alias
    plain = osls_package(dist, tmp_path / "plain")["Resources"]
    assert "SnapStart" not in plain["PredictLambdaFunction"]["Properties"]
    assert not [r for r in plain.values() if r["Type"] == "AWS::Lambda::Alias"]
