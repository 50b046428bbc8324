"""The Helm chart: lint, render every scenario, validate every object, check the contract."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml

from tests.deploy.deploy_support import (
    CHART_DIR,
    CI_VALUES,
    KUBERNETES_VERSION,
    by_kind,
    chart,
    load_values,
    named,
    pod_specs,
    render,
    render_objects,
    validate_custom_object,
)

SCENARIOS = [None, *CI_VALUES]
SCENARIO_IDS = ["default", *(path.name.removesuffix("-values.yaml") for path in CI_VALUES)]
# Objects of custom resource kinds: checked against our CRDs, or not at all (ServiceMonitor).
CUSTOM_KINDS = {"WorkerPool", "ClusterKopfPeering", "KopfPeering"}
THIRD_PARTY_KINDS = {"ServiceMonitor"}
HELM_ERROR_SEVERITY = 3
HELM_WARNING_SEVERITY = 2


@pytest.fixture(scope="module", params=SCENARIOS, ids=SCENARIO_IDS)
def scenario(request: pytest.FixtureRequest) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    values = load_values(request.param)
    return values, render_objects(values)


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]


# --- chart files -----------------------------------------------------------------------------


def test_chart_metadata() -> None:
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "kadence"
    assert meta["type"] == "application"


def test_ci_scenarios_exist() -> None:
    names = {path.name for path in CI_VALUES}
    assert {
        "external-services-values.yaml",
        "all-optional-features-on-values.yaml",
        "ha-values.yaml",
    } <= names


def test_values_yaml_points_at_its_schema_and_comments_every_key() -> None:
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    undocumented = []
    for number, line in enumerate(lines):
        if not re.match(r"^\s*[A-Za-z_][\w.-]*:", line):
            continue  # comments, blank lines, list items
        previous = next((p for p in reversed(lines[:number]) if p.strip()), "")
        if not previous.strip().startswith("#"):
            undocumented.append(f"{number + 1}: {line.strip()}")
    assert undocumented == []


def test_values_schema_describes_every_key_and_accepts_the_defaults() -> None:
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    missing: list[str] = []

    def walk(values: Any, node: dict[str, Any], path: str) -> None:
        if not isinstance(values, dict) or "properties" not in node:
            return
        assert node.get("additionalProperties") is False, f"{path or '<root>'} accepts typos"
        for key, value in values.items():
            sub = node["properties"].get(key)
            if sub is None or not sub.get("description"):
                missing.append(f"{path}.{key}")
                continue
            walk(value, sub, f"{path}.{key}")

    walk(defaults, schema, "")
    assert missing == []
    chart().validate_schema(defaults)


@pytest.mark.parametrize(
    "values",
    [
        {"operator": {"replica": 2}},  # typo
        {"dispatcher": {"replicas": -1}},
        {"workerPool": {"concurrency": 0}},
        {"workerPool": {"queues": ["urgent"]}},
        {"config": {"logLevel": "LOUD"}},
        {"service": {"type": "Balanced"}},
        {"externalDatabase": {"url": "mysql://db/kadence"}},
        {"redis": {"persistence": {"size": "lots"}}},
        {"ingres": {"enabled": True}},
        {"api": {"port": 70000}},
    ],
    ids=lambda v: json.dumps(v),
)
def test_bad_values_are_rejected_by_the_schema(values: dict[str, Any]) -> None:
    with pytest.raises(helm_python.HelmError):
        chart().validate_schema(values)
    with pytest.raises(helm_python.HelmError):
        render(values)


@pytest.mark.parametrize("values", SCENARIOS, ids=SCENARIO_IDS)
def test_helm_lint_is_clean(values: Path | None) -> None:
    result = helm_python.lint(
        CHART_DIR, load_values(values), strict=True, namespace="kadence", kube_version=KUBERNETES_VERSION
    )
    serious = [m for m in result["messages"] if m["severity"] >= HELM_WARNING_SEVERITY]
    assert result["errors"] == [] and serious == []


# --- every rendered object -------------------------------------------------------------------


def test_every_object_is_valid_kubernetes(scenario: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    _, objects = scenario
    assert objects
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            assert validate_custom_object(obj) == [], f"{obj['kind']}/{obj['metadata']['name']}"
        elif obj["kind"] not in THIRD_PARTY_KINDS:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_kubernetes_validation_is_strict() -> None:
    deployment = next(o for o in render_objects() if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_object_is_labelled(scenario: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    _, objects = scenario
    for obj in objects:
        labels = obj["metadata"].get("labels", {})
        for key in (
            "app.kubernetes.io/name",
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
            "app.kubernetes.io/part-of",
            "helm.sh/chart",
        ):
            assert key in labels, f"{obj['kind']}/{obj['metadata']['name']} lacks {key}"


def test_selectors_are_stable_and_match_the_pods(
    scenario: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    _, objects = scenario
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            selector = obj["spec"]["selector"]["matchLabels"]
            assert "helm.sh/chart" not in selector and "app.kubernetes.io/version" not in selector
            assert selector.items() <= obj["spec"]["template"]["metadata"]["labels"].items()
        if obj["kind"] == "Service":
            assert "helm.sh/chart" not in obj["spec"]["selector"]


def test_restricted_security_everywhere(scenario: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    _, objects = scenario
    for name, pod in pod_specs(objects):
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        mounts_by_volume = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
        for container in _containers(pod):
            context = container["securityContext"]
            where = f"{name}/{container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert context.get("privileged") is not True, where
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and tmp[0]["name"] in mounts_by_volume, f"{where} has no writable /tmp"
            assert "resources" in container, where


def test_rbac_has_no_wildcards(scenario: tuple[dict[str, Any], list[dict[str, Any]]]) -> None:
    _, objects = scenario
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj["rules"]:
                for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                    assert all("*" not in item for item in rule.get(key, [])), (
                        f"{obj['metadata']['name']}: {rule}"
                    )
                assert not set(rule["verbs"]) & {"escalate", "bind", "impersonate"}


# --- the operator pod, its sidecar and the dispatcher ------------------------------------------


def _operator(objects: list[dict[str, Any]]) -> dict[str, Any]:
    [deployment] = [d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    return deployment


def test_operator_pod_has_the_api_sidecar_with_probes(
    scenario: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    values, objects = scenario
    pod = _operator(objects)["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"operator", "api"}
    assert containers["operator"]["args"][0] == "operator"
    api = containers["api"]
    assert api["args"] == ["api"]
    port = values.get("api", {}).get("port", 8080)
    assert api["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = _env(api)
    assert env["KADENCE_API_HOST"]["value"] == "0.0.0.0"
    assert env["KADENCE_API_PORT"]["value"] == str(port)
    assert env["KADENCE_MASTER_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "master-token"
    assert pod["automountServiceAccountToken"] is True


def test_migrations_run_in_an_init_container_as_the_table_owner() -> None:
    pod = _operator(render_objects())["spec"]["template"]["spec"]
    [migrate] = pod["initContainers"]
    assert migrate["args"] == ["migrate"]
    assert (
        _env(migrate)["KADENCE_MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"]
        == "migration-database-url"
    )
    # Only the migration container holds the owner's credentials.
    for container in pod["containers"]:
        assert "KADENCE_MIGRATION_DATABASE_URL" not in _env(container)
    off = _operator(render_objects({"migrations": {"enabled": False}}))["spec"]["template"]["spec"]
    assert "initContainers" not in off


def test_every_kadence_container_gets_its_connections_from_the_secret(
    scenario: tuple[dict[str, Any], list[dict[str, Any]]],
) -> None:
    values, objects = scenario
    secret_name = (
        values.get("existingSecret") or named(objects, "Secret", _fullname(values))["metadata"]["name"]
    )
    for name, pod in pod_specs(objects):
        for container in _containers(pod):
            if not container["image"].startswith("ghcr.io/kadence-dev/kadence"):
                continue
            env = _env(container)
            for variable in ("KADENCE_DATABASE_URL", "KADENCE_REDIS_URL"):
                ref = env[variable]["valueFrom"]["secretKeyRef"]
                assert ref["name"] == secret_name, f"{name}/{container['name']}"


def _fullname(values: dict[str, Any]) -> str:
    return values.get("fullnameOverride") or "kadence"


def test_dispatcher_runs_two_replicas_without_an_api_token() -> None:
    dispatcher = named(render_objects(), "Deployment", "kadence-dispatcher")
    assert dispatcher["spec"]["replicas"] == 2
    pod = dispatcher["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert [c["args"] for c in pod["containers"]] == [["dispatcher"]]


def test_default_worker_pool() -> None:
    objects = render_objects()
    pool = named(objects, "WorkerPool", "default")
    assert pool["apiVersion"] == "kadence.dev/v1alpha1"
    assert pool["spec"]["concurrency"] == 5
    assert validate_custom_object(pool) == []
    assert not by_kind(render_objects({"workerPool": {"create": False}}), "WorkerPool")


def test_service_targets_the_api_port() -> None:
    objects = render_objects()
    service = named(objects, "Service", "kadence")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    operator_labels = _operator(objects)["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= operator_labels.items()


# --- RBAC ------------------------------------------------------------------------------------


def _rules(objects: list[dict[str, Any]]) -> list[tuple[str, str, set[str]]]:
    granted = []
    for role in [*by_kind(objects, "ClusterRole"), *by_kind(objects, "Role")]:
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    granted.append((group, resource, set(rule["verbs"])))
    return granted


def _allowed(objects: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    verbs: set[str] = set()
    for g, r, v in _rules(objects):
        if (g, r) == (group, resource):
            verbs |= v
    return verbs


def test_operator_permissions_are_what_kopf_and_the_operator_need() -> None:
    objects = render_objects()
    for plural in ("scheduledtasks", "cronschedules", "workerpools"):
        assert {"get", "list", "watch", "patch", "update"} <= _allowed(objects, "kadence.dev", plural)
        assert _allowed(objects, "kadence.dev", f"{plural}/status") == {"get", "patch", "update"}
    assert _allowed(objects, "", "events") == {"create", "patch"}
    assert _allowed(objects, "events.k8s.io", "events") == {"create", "patch"}
    assert _allowed(objects, "apps", "deployments") == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
        "update",
        "delete",
    }
    assert _allowed(objects, "apiextensions.k8s.io", "customresourcedefinitions") == {"list", "watch"}
    assert _allowed(objects, "", "namespaces") == {"list", "watch"}
    assert _allowed(objects, "kopf.dev", "clusterkopfpeerings") == {"get", "list", "watch", "patch"}
    assert _allowed(objects, "kopf.dev", "kopfpeerings") == {"get", "list", "watch", "patch"}
    # Nothing else: no secrets, no pods, no other groups.
    granted = {(g, r) for g, r, _ in _rules(objects)}
    assert ("", "secrets") not in granted and ("", "pods") not in granted
    assert {g for g, _ in granted} == {
        "kadence.dev",
        "",
        "events.k8s.io",
        "apps",
        "apiextensions.k8s.io",
        "kopf.dev",
    }


def test_bindings_point_at_the_service_account() -> None:
    objects = render_objects()
    for binding in [*by_kind(objects, "ClusterRoleBinding"), *by_kind(objects, "RoleBinding")]:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kadence", "namespace": "kadence"}]
        kind = binding["roleRef"]["kind"]
        named(objects, kind, binding["roleRef"]["name"])


def test_watch_namespace_uses_a_role_and_namespaced_peering() -> None:
    objects = render_objects({"watchNamespace": "team-a"})
    role = named(objects, "Role", "kadence-operator")
    assert role["metadata"]["namespace"] == "team-a"
    assert named(objects, "RoleBinding", "kadence-operator")["metadata"]["namespace"] == "team-a"
    assert _allowed(objects, "kopf.dev", "clusterkopfpeerings") == set()
    peering = named(objects, "KopfPeering", "kadence")
    assert peering["metadata"]["namespace"] == "team-a"
    operator = _operator(objects)["spec"]["template"]["spec"]["containers"][0]
    assert _env(operator)["KADENCE_NAMESPACE"]["value"] == "team-a"
    assert named(objects, "WorkerPool", "default")["metadata"]["namespace"] == "team-a"


def test_peering_on_by_default_and_standalone_when_off() -> None:
    objects = render_objects()
    assert named(objects, "ClusterKopfPeering", "kadence")
    assert "--peering=kadence" in _operator(objects)["spec"]["template"]["spec"]["containers"][0]["args"]
    off = render_objects({"operator": {"peering": {"enabled": False}}})
    assert not by_kind(off, "ClusterKopfPeering") and not by_kind(off, "KopfPeering")
    assert "--standalone" in _operator(off)["spec"]["template"]["spec"]["containers"][0]["args"]
    assert _allowed(off, "kopf.dev", "kopfpeerings") == set()


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render_objects(
        {"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "kadence-sa"}}
    )
    assert not _rules(objects)
    assert not by_kind(objects, "ServiceAccount")
    assert _operator(objects)["spec"]["template"]["spec"]["serviceAccountName"] == "kadence-sa"


# --- secrets and bundled services ------------------------------------------------------------


def _secret_data(objects: list[dict[str, Any]], name: str = "kadence") -> dict[str, str]:
    secret = named(objects, "Secret", name)
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


def test_bundled_services_and_generated_secrets() -> None:
    objects = render_objects()
    assert {s["metadata"]["name"] for s in by_kind(objects, "StatefulSet")} == {
        "kadence-redis",
        "kadence-postgresql",
    }
    data = _secret_data(objects)
    assert len(data["master-token"]) == 40
    assert data["redis-url"] == f"redis://:{data['redis-password']}@kadence-redis.kadence.svc:6379/0"
    assert data["database-url"] == (
        f"postgresql://kadence_app:{data['app-password']}@kadence-postgresql.kadence.svc:5432/kadence"
    )
    assert data["migration-database-url"] == (
        f"postgresql://kadence:{data['postgres-password']}@kadence-postgresql.kadence.svc:5432/kadence"
    )
    assert data["app-password"] != data["postgres-password"]
    assert "webhook-secret" not in data


def test_external_services_turn_the_bundled_ones_off() -> None:
    values = load_values(CHART_DIR / "ci" / "external-services-values.yaml")
    objects = render_objects(values)
    assert not by_kind(objects, "StatefulSet")
    data = _secret_data(objects)
    assert data["redis-url"] == values["externalRedis"]["url"]
    assert data["database-url"] == values["externalDatabase"]["url"]
    assert data["migration-database-url"] == values["externalDatabase"]["migrationUrl"]
    assert data["master-token"] == values["secrets"]["masterToken"]
    assert data["webhook-secret"] == values["secrets"]["webhookSecret"]
    assert set(data) == {
        "database-url",
        "migration-database-url",
        "redis-url",
        "master-token",
        "webhook-secret",
    }


def test_existing_secret_replaces_the_charts_own() -> None:
    objects = render_objects(
        {"existingSecret": "mine", "redis": {"enabled": False}, "postgresql": {"enabled": False}}
    )
    assert not by_kind(objects, "Secret")
    api = next(c for c in _operator(objects)["spec"]["template"]["spec"]["containers"] if c["name"] == "api")
    assert _env(api)["KADENCE_MASTER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mine"


def test_nowhere_to_keep_data_fails_with_a_message() -> None:
    with pytest.raises(helm_python.HelmError, match="externalDatabase.url"):
        render({"postgresql": {"enabled": False}})
    with pytest.raises(helm_python.HelmError, match="externalRedis.url"):
        render({"redis": {"enabled": False}})


def test_bundled_postgres_creates_the_application_role() -> None:
    objects = render_objects()
    init = named(objects, "ConfigMap", "kadence-postgresql-init")
    script = init["data"]["10-app-role.sh"]
    assert "CREATE ROLE" in script and "KADENCE_APP_USER" in script
    api = next(c for c in _operator(objects)["spec"]["template"]["spec"]["containers"] if c["name"] == "api")
    assert _env(api)["KADENCE_APP_ROLE"]["value"] == "kadence_app"


def test_persistence_off_uses_empty_dirs() -> None:
    objects = render_objects({"redis": {"persistence": {"enabled": False}}})
    redis = named(objects, "StatefulSet", "kadence-redis")
    assert "volumeClaimTemplates" not in redis["spec"]
    assert {"name": "data", "emptyDir": {}} in redis["spec"]["template"]["spec"]["volumes"]
    postgres = named(objects, "StatefulSet", "kadence-postgresql")
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "8Gi"


# --- optional features -----------------------------------------------------------------------


OPTIONAL_KINDS = {"ServiceMonitor", "NetworkPolicy", "Ingress", "PodDisruptionBudget"}


def test_optional_features_are_off_by_default() -> None:
    kinds = {obj["kind"] for obj in render_objects()}
    assert not kinds & OPTIONAL_KINDS


def test_all_optional_features_on() -> None:
    values = load_values(CHART_DIR / "ci" / "all-optional-features-on-values.yaml")
    objects = render_objects(values)
    assert OPTIONAL_KINDS <= {obj["kind"] for obj in objects}
    monitor = named(objects, "ServiceMonitor", "kadence")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    service = named(objects, "Service", "kadence")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ingress = named(objects, "Ingress", "kadence")
    assert ingress["spec"]["tls"][0]["secretName"] == "kadence-example-com-tls"
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "kadence"
    policies = {p["metadata"]["name"] for p in by_kind(objects, "NetworkPolicy")}
    assert policies == {"kadence-api", "kadence-dispatcher", "kadence-redis", "kadence-postgresql"}
    pdbs = {p["metadata"]["name"] for p in by_kind(objects, "PodDisruptionBudget")}
    assert pdbs == {"kadence-operator", "kadence-dispatcher"}
    pool = named(objects, "WorkerPool", "default")
    assert (
        pool["spec"]["queues"] == ["critical", "high"]
        and pool["spec"]["resources"]["limits"]["memory"] == "512Mi"
    )
    api = next(c for c in _operator(objects)["spec"]["template"]["spec"]["containers"] if c["name"] == "api")
    assert _env(api)["KADENCE_WEBHOOK_ALLOWED_HOSTS"]["value"] == "receiver.example.svc,hooks.example.com"


def test_ha_scenario() -> None:
    objects = render_objects(load_values(CHART_DIR / "ci" / "ha-values.yaml"))
    assert _operator(objects)["spec"]["replicas"] == 2
    assert named(objects, "Deployment", "kadence-dispatcher")["spec"]["replicas"] == 3
    assert len(by_kind(objects, "PodDisruptionBudget")) == 2
    assert by_kind(objects, "ClusterKopfPeering")


# --- names and notes -------------------------------------------------------------------------


def test_names_are_cut_to_63_characters() -> None:
    release = "a-release-name-that-is-long-enough-to-overflow-kubernetes-names"
    objects = render_objects(name=release)
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
        assert not obj["metadata"]["name"].endswith("-")
        for value in obj["metadata"].get("labels", {}).values():
            assert len(str(value)) <= 63
    names = [(o["kind"], o["metadata"]["name"]) for o in objects]
    assert len(names) == len(set(names)), "truncation made two names collide"


def test_release_named_like_the_chart_is_not_repeated() -> None:
    assert named(render_objects(name="kadence"), "Service", "kadence")
    assert named(render_objects(name="prod"), "Service", "prod-kadence")


def test_notes_tell_how_to_reach_the_api_and_create_a_schedule() -> None:
    notes = render()["kadence/templates/NOTES.txt"]
    assert "port-forward svc/kadence 8080:8080" in notes
    assert "master-token" in notes and "Authorization: Bearer" in notes
    assert "kind: CronSchedule" in notes
