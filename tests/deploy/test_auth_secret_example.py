"""The example auth Secret and the README agree on the files auth.yaml names: each file the
example's auth.yaml names, in use or commented out, is under the Deployment's mount and is a key
the example's ``kubectl create secret`` command puts in the Secret. A README that created
``session-secret`` beside an auth.yaml that never named it left sessions ending at each restart."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLE = DEPLOY / "auth-secret.example.yaml"
MOUNT = "/etc/crontask/"


def test_every_file_the_example_names_is_created_by_its_command() -> None:
    text = EXAMPLE.read_text()
    auth_yaml = yaml.safe_load(text)["stringData"]["auth.yaml"]
    named = re.findall(r"^\s*#?\s*\w*[Ff]ile:\s*(\S+)", auth_yaml, re.MULTILINE)
    assert any(path.endswith("/session-secret") for path in named), named
    created = set(re.findall(r"--from-file=([\w.-]+)=", text))
    for path in named:
        assert path.startswith(MOUNT), path
        key = path.removeprefix(MOUNT)
        assert key in created or key == "jwt-secret", (key, created)  # jwt: only if used
    assert f"mountPath: {MOUNT.rstrip('/')}" in (DEPLOY / "deployment.yaml").read_text()
