"""AWS provisioning against moto's Secrets Manager: keys push creates then versions the secret, deploy's
existence check names the fix, remove --with-keys schedules the deletion; a public or group-readable
key set is refused; nothing printed holds key material."""

from __future__ import annotations

import io
import json
import os

import pytest
from fixtures.requests import make_keys

from litefaas.cli import main as cli
from litefaas.packaging import provision, provision_aws
from litefaas.packaging.secret_scan import known_private_keys, scan_bytes
from litefaas.packaging.targets import PackageError

moto = pytest.importorskip("moto")
REGION = "eu-west-1"


@pytest.fixture
def aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    with moto.mock_aws():
        import boto3

        yield boto3.client("secretsmanager", region_name=REGION)


def key_file(tmp_path, name="keys.json", mode=0o600, text=None):
    keys = make_keys()
    path = tmp_path / name
    path.write_text(text if text is not None else keys.private_json)
    os.chmod(path, mode)
    return path, keys


def test_keys_push_creates_then_adds_a_version(aws, tmp_path, capsys):
    """keys push creates the secret, then adds a version; nothing printed holds key material."""
    path, keys = key_file(tmp_path)
    assert cli.main(["keys", "push", "--cloud", "aws", "--stage", "prod", "--keys", str(path)]) == 0
    value = aws.get_secret_value(SecretId="litefaas-prod-private-keys")
    assert json.loads(value["SecretString"]) == json.loads(keys.private_json)
    rotated, rotated_keys = key_file(tmp_path, "rotated.json")
    assert cli.main(["keys", "push", "--cloud", "aws", "--stage", "prod", "--keys", str(rotated)]) == 0
    value = aws.get_secret_value(SecretId="litefaas-prod-private-keys")
    assert json.loads(value["SecretString"]) == json.loads(rotated_keys.private_json)
    versions = aws.list_secret_version_ids(SecretId="litefaas-prod-private-keys")["Versions"]
    assert len(versions) == 2
    out = capsys.readouterr()
    needles = known_private_keys({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    assert not scan_bytes((out.out + out.err).encode(), needles)
    assert "pushed keys.json" in out.out


def test_deploy_check_names_the_missing_secret_then_passes(aws):
    """A missing secret fails the deploy check naming the fix; once pushed the check passes."""
    runner = provision.Runner(dry_run=False, out=io.StringIO())
    with pytest.raises(
        PackageError, match="secret litefaas-dev-private-keys does not exist in eu-west-1: push"
    ):
        provision_aws.require_secret("litefaas-dev-private-keys", REGION, "dev", runner)
    aws.create_secret(Name="litefaas-dev-private-keys", SecretString=make_keys().private_json)
    provision_aws.require_secret("litefaas-dev-private-keys", REGION, "dev", runner)


def test_remove_with_keys_schedules_the_deletion(aws):
    """remove --with-keys schedules the secret's deletion, and deploy then refuses it."""
    aws.create_secret(Name="s", SecretString="[]")
    provision_aws.delete_keys("s", REGION, provision.Runner(dry_run=False, out=io.StringIO()))
    assert "DeletedDate" in aws.describe_secret(SecretId="s")
    runner = provision.Runner(dry_run=False, out=io.StringIO())
    with pytest.raises(PackageError, match="scheduled for deletion"):
        provision_aws.require_secret("s", REGION, "dev", runner)


def test_a_group_readable_or_public_key_set_is_refused(aws, tmp_path, capsys):
    """A group-readable file or a public key set is refused and no secret is created."""
    readable, _ = key_file(tmp_path, "readable.json", mode=0o640)
    assert cli.main(["keys", "push", "--cloud", "aws", "--keys", str(readable)]) == 2
    assert "readable or writable by group or others (mode 0640)" in capsys.readouterr().err
    keys = make_keys()
    public, _ = key_file(tmp_path, "public.json", text=json.dumps(keys.public))
    assert cli.main(["keys", "push", "--cloud", "aws", "--keys", str(public)]) == 2
    assert "is a public key set (no private_key)" in capsys.readouterr().err
    listed, _ = key_file(tmp_path, "listed.json", text=json.dumps(keys.public["keys"]))
    assert cli.main(["keys", "push", "--cloud", "aws", "--keys", str(listed)]) == 2
    assert "is a public key set" in capsys.readouterr().err
    assert aws.list_secrets()["SecretList"] == []


def test_key_material_in_an_argv_is_refused():
    """A command carrying private key material in its arguments is refused, even in a dry run."""
    keys = make_keys()
    needles = known_private_keys({"LITEFAAS_PRIVATE_KEYS": keys.private_json})
    runner = provision.Runner(dry_run=True, out=io.StringIO(), needles=needles)
    raw = json.loads(keys.private_json)[0]["private_key"]
    with pytest.raises(PackageError, match="private key material in its arguments"):
        runner.run(["gcloud", "secrets", "create", "s", f"--data={raw}"], "never")
    with pytest.raises(PackageError, match="private key material"):
        runner.run(["az", "keyvault", "secret", "set", "--value", keys.private_json], "never")
