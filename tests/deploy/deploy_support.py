"""Shared helpers of the deploy tests: paths, chart rendering, CRD schema validation."""

from __future__ import annotations

import copy
import functools
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = ROOT / "crds"
CHART_DIR = ROOT / "helm" / "kadence"
CHART_CRDS_DIR = CHART_DIR / "crds"
EXAMPLES_DIR = ROOT / "manifests" / "examples"
INVALID_EXAMPLES_DIR = EXAMPLES_DIR / "invalid"
CI_VALUES = sorted((CHART_DIR / "ci").glob("*-values.yaml"))
RELEASE = "kadence"
NAMESPACE = "kadence"
# Kubernetes schemas the rendered objects are checked against (shipped by kubernetes-validate).
KUBERNETES_VERSION = "1.33.0"

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def load_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a file."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def load_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def render(
    values: dict[str, Any] | None = None, *, name: str = RELEASE, namespace: str = NAMESPACE
) -> dict[str, str]:
    """Template path → rendered text, as `helm install` would render it."""
    return chart().render(values or {}, name=name, namespace=namespace, is_install=True)


def render_objects(values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders with ``values``."""
    objects: list[dict[str, Any]] = []
    for template, text in sorted(render(values, **kwargs).items()):
        if template.endswith(".txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    matches = [obj for obj in by_kind(objects, kind) if obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_specs(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload."""
    specs = []
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            specs.append((f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]))
    return specs


# --- CRD schemas as JSON Schema ------------------------------------------------------------


def openapi_to_jsonschema(node: Any) -> Any:
    """Convert a CRD openAPIV3Schema to JSON Schema (2020-12) that behaves like the API server.

    - ``exclusiveMinimum: true`` (OpenAPI 3.0) becomes the numeric 2020-12 form;
    - objects with properties reject unknown fields (as strict field validation does,
      the default of ``kubectl apply``), unless they preserve unknown fields;
    - ``x-kubernetes-*`` extensions are dropped (CEL rules are checked separately).
    """
    if isinstance(node, list):
        return [openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
            if value:
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                out[key] = node[bound]
            continue
        if key == "properties":
            out[key] = {name: openapi_to_jsonschema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = openapi_to_jsonschema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [openapi_to_jsonschema(sub) for sub in value]
        else:
            out[key] = copy.deepcopy(value)
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if node.get(exclusive) is True:
            out.pop(bound, None)
    if (
        node.get("type") == "object"
        and "properties" in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
        and "additionalProperties" not in node
    ):
        out["additionalProperties"] = False
    return out


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time")(_is_rfc3339)


def crd_validator(crd: dict[str, Any]) -> jsonschema.protocols.Validator:
    """A validator of objects of ``crd``'s storage version."""
    version = next(v for v in crd["spec"]["versions"] if v["storage"])
    schema = openapi_to_jsonschema(version["schema"]["openAPIV3Schema"])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    # apiVersion, kind and metadata are always allowed and checked by the API server itself.
    schema["properties"].update(
        {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    )
    return jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


@functools.cache
def crds_by_kind() -> dict[str, dict[str, Any]]:
    """kind → CRD of every file in crds/."""
    crds = {}
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        for crd in load_docs(path):
            crds[crd["spec"]["names"]["kind"]] = crd
    return crds


def validate_custom_object(obj: dict[str, Any]) -> list[str]:
    """Errors the API server's schema check would report for ``obj`` (empty when valid)."""
    crd = crds_by_kind()[obj["kind"]]
    group = crd["spec"]["group"]
    versions = {f"{group}/{v['name']}" for v in crd["spec"]["versions"] if v["served"]}
    if obj.get("apiVersion") not in versions:
        return [f"apiVersion {obj.get('apiVersion')!r} is not served by {crd['metadata']['name']}"]
    validator = crd_validator(crd)
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in validator.iter_errors(obj)
    ]
