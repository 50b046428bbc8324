"""The CRDs in crds/ are generated from the resource models, structural, and in the chart."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kadence.controller.crds import build_all_crds, build_crd, build_peering_crds, generated_files
from kadence.domain.resources import RESOURCE_KINDS
from tests.deploy.deploy_support import CHART_CRDS_DIR, CRDS_DIR, crds_by_kind

KADENCE_KINDS = [resource.kind for resource in RESOURCE_KINDS]


def test_crds_dir_matches_the_generator() -> None:
    expected = generated_files()
    actual = {path.name: path.read_text(encoding="utf-8") for path in CRDS_DIR.glob("*.yaml")}
    assert sorted(actual) == sorted(expected), "run `make crds`"
    for name, text in expected.items():
        assert actual[name] == text, f"crds/{name} is stale: run `make crds`"


def test_chart_crds_are_identical_to_crds_dir() -> None:
    chart = {path.name: path.read_bytes() for path in CHART_CRDS_DIR.glob("*.yaml")}
    top = {path.name: path.read_bytes() for path in CRDS_DIR.glob("*.yaml")}
    assert chart == top, "helm/kadence/crds differs from crds/: run `make crds`"


def test_generated_yaml_round_trips() -> None:
    for crd in [*build_all_crds(), *build_peering_crds()]:
        text = yaml.safe_dump(crd, sort_keys=False)
        assert yaml.safe_load(text) == crd


@pytest.mark.parametrize(
    ("kind", "plural", "short_name"),
    [
        ("ScheduledTask", "scheduledtasks", "stask"),
        ("CronSchedule", "cronschedules", "cronsched"),
        ("WorkerPool", "workerpools", "wpool"),
    ],
)
def test_names_scope_and_subresources(kind: str, plural: str, short_name: str) -> None:
    crd = build_crd(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{plural}.kadence.dev"
    spec = crd["spec"]
    assert spec["group"] == "kadence.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == kind
    assert spec["names"]["plural"] == plural
    assert spec["names"]["shortNames"] == [short_name]
    assert spec["names"]["categories"] == ["kadence"]
    [version] = spec["versions"]
    assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    assert build_crd(short_name) == crd


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("ScheduledTask", ["Phase", "Priority", "Attempts", "Job", "Age"]),
        ("CronSchedule", ["Schedule", "Suspend", "Last Run", "Next Run", "Age"]),
        ("WorkerPool", ["Concurrency", "Ready", "Backlog", "Age"]),
    ],
)
def test_printer_columns(kind: str, columns: list[str]) -> None:
    [version] = build_crd(kind)["spec"]["versions"]
    printed = version["additionalPrinterColumns"]
    assert [column["name"] for column in printed] == columns
    schema = version["schema"]["openAPIV3Schema"]
    for column in printed:
        path = column["jsonPath"].lstrip(".").split(".")
        if path[0] == "metadata":
            continue
        node = schema
        for part in path:
            node = node["properties"][part]  # the column points at a real field
        assert column["type"] in {"string", "integer", "boolean", "date", "number"}
        assert node["type"] == ("string" if column["type"] == "date" else column["type"])


def _structural_problems(node: dict[str, Any], path: str, *, kopf: bool) -> list[str]:
    problems = []
    for banned in ("$ref", "$defs", "nullable", "title", "uniqueItems", "oneOf", "allOf", "definitions"):
        if banned in node:
            problems.append(f"{path}: {banned}")
    if node.get("x-kubernetes-int-or-string"):
        if node.get("anyOf") != [{"type": "integer"}, {"type": "string"}]:
            problems.append(f"{path}: int-or-string must be anyOf [integer, string]")
        return problems
    if "anyOf" in node:
        problems.append(f"{path}: anyOf")
    if "type" not in node:
        problems.append(f"{path}: no type")
    if node.get("x-kubernetes-preserve-unknown-fields"):
        name = path.rsplit(".", 1)[-1]
        allowed = {"args", "metadata"} | ({"status"} if kopf else set())
        if name not in allowed:
            problems.append(f"{path}: preserves unknown fields")
    if "properties" in node and "additionalProperties" in node:
        problems.append(f"{path}: properties and additionalProperties together")
    if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
        if not node.get("x-kubernetes-preserve-unknown-fields") and path != ".metadata":
            problems.append(f"{path}: object without properties")
    for name, sub in node.get("properties", {}).items():
        problems += _structural_problems(sub, f"{path}.{name}", kopf=kopf)
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            problems += _structural_problems(node[key], f"{path}.{key}", kopf=kopf)
    if "not" in node:
        junctor = node["not"]
        forbidden = {"type", "description", "default", "additionalProperties", "nullable"} & set(junctor)
        if forbidden:
            problems.append(f"{path}.not: sets {sorted(forbidden)}")
    return problems


@pytest.mark.parametrize("kind", sorted(crds_by_kind()))
def test_schemas_are_structural(kind: str) -> None:
    crd = crds_by_kind()[kind]
    kopf = crd["spec"]["group"] == "kopf.dev"
    for version in crd["spec"]["versions"]:
        assert _structural_problems(version["schema"]["openAPIV3Schema"], "", kopf=kopf) == []


@pytest.mark.parametrize("kind", KADENCE_KINDS)
def test_only_args_keep_unknown_fields(kind: str) -> None:
    found: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        if node.get("x-kubernetes-preserve-unknown-fields"):
            found.append(path)
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{path}[]")

    [version] = build_crd(kind)["spec"]["versions"]
    walk(version["schema"]["openAPIV3Schema"], "")
    assert all(path.endswith(".args") for path in found), found


def test_required_fields() -> None:
    def spec(kind: str) -> dict[str, Any]:
        [version] = build_crd(kind)["spec"]["versions"]
        return version["schema"]["openAPIV3Schema"]["properties"]["spec"]

    assert spec("ScheduledTask")["required"] == ["taskId", "userId"]
    assert spec("CronSchedule")["required"] == ["schedule", "taskGoal", "userId"]
    assert "required" not in spec("WorkerPool")
    assert spec("WorkerPool")["properties"]["concurrency"] == {
        "description": "Jobs run at the same time by the pool.",
        "type": "integer",
        "default": 5,
        "maximum": 1000,
        "minimum": 1,
    }


def test_delay_and_run_at_are_exclusive_with_a_readable_message() -> None:
    [version] = build_crd("ScheduledTask")["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["not"] == {"required": ["delaySeconds", "runAt"]}
    [rule] = spec["x-kubernetes-validations"]
    assert "delaySeconds" in rule["rule"] and "runAt" in rule["rule"]


def test_peering_crds() -> None:
    names = {crd["metadata"]["name"]: crd["spec"]["scope"] for crd in build_peering_crds()}
    assert names == {"clusterkopfpeerings.kopf.dev": "Cluster", "kopfpeerings.kopf.dev": "Namespaced"}
