"""manifests/install.yaml is the chart's default render, kept in sync and valid."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import kubernetes_validate
import yaml

from tests.deploy.deploy_support import (
    KUBERNETES_VERSION,
    ROOT,
    load_docs,
    render_objects,
    validate_custom_object,
)

INSTALL = ROOT / "manifests" / "install.yaml"
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterKopfPeering",
    "CustomResourceDefinition",
}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_manifests", ROOT / "hack" / "render_manifests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_install_yaml_is_up_to_date() -> None:
    expected = _generator().render_install_manifest()
    assert INSTALL.read_text(encoding="utf-8") == expected, (
        "manifests/install.yaml is stale: run `make manifests`"
    )


def test_install_yaml_is_the_default_render() -> None:
    generator = _generator()
    values = yaml.safe_load(generator.VALUES.read_text())
    # The install values only fill in secrets; everything else is the chart's defaults.
    assert set(values) <= {"secrets", "redis", "postgresql"}
    assert values["redis"] == {"password": values["redis"]["password"]}
    assert set(values["postgresql"]) == {"auth"} and set(values["postgresql"]["auth"]) == {
        "password",
        "appPassword",
    }
    rendered = {(o["kind"], o["metadata"]["name"]) for o in render_objects(values)}
    shipped = load_docs(INSTALL)
    assert shipped[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kadence"}}
    assert {(o["kind"], o["metadata"]["name"]) for o in shipped[1:]} == rendered


def test_install_yaml_objects_are_valid_and_namespaced() -> None:
    for obj in load_docs(INSTALL):
        assert obj["kind"] != "CustomResourceDefinition", "CRDs live in crds/"
        if obj["kind"] in ("WorkerPool", "ClusterKopfPeering"):
            assert validate_custom_object(obj) == []
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        if obj["kind"] not in CLUSTER_SCOPED:
            assert obj["metadata"]["namespace"] == "kadence", f"{obj['kind']}/{obj['metadata']['name']}"


def test_install_yaml_applies_dependencies_first() -> None:
    kinds = [obj["kind"] for obj in load_docs(INSTALL)]
    assert kinds.index("Secret") < kinds.index("Deployment")
    assert kinds.index("ServiceAccount") < kinds.index("Deployment")
    assert kinds[-1] == "WorkerPool"


def test_install_yaml_warns_about_its_placeholder_secrets() -> None:
    text = INSTALL.read_text(encoding="utf-8")
    assert "PLACEHOLDER" in text.split("---", 1)[0]
    assert "change-me" in " ".join(_generator().VALUES.read_text().split())
