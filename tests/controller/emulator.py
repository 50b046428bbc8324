"""A kmock Kubernetes emulator held to a real API server's rules.

kmock's ``KubernetesEmulator`` stores whatever it is sent. A real API server does more,
and an operator that only works against kmock may fail on a cluster. This subclass adds:

- ``uid``, ``resourceVersion`` (bumped on every change, checked in merge patches and in
  JSON-patch ``test`` operations), ``generation`` (bumped on spec changes) and
  ``creationTimestamp``; names from ``generateName``;
- the status subresource: ``.status`` is ignored in creates and in writes to the main
  resource, and a write to ``/status`` changes nothing but ``.status``;
- pruning of fields the CRD schema does not declare, then validation of every written
  custom resource against its CRD schema (from ``crds/*.yaml``), and of every written
  Deployment against the Kubernetes schemas (``kubernetes-validate``) — 422 if invalid;
- no change, no write: a patch that changes nothing returns the object without an event.
"""

from __future__ import annotations

import copy
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonschema
import kmock
import kubernetes_validate
import yaml
from kmock._internal import enums, rendering

CRD_DIR = Path(__file__).resolve().parents[2] / "crds"
KUBERNETES_VERSION = "1.30.0"
_VALIDATED_BUILTINS = {("apps", "v1", "deployments")}


def load_crds(directory: Path = CRD_DIR) -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(directory.glob("*.yaml"))]


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed.tzinfo is not None

    return checker


def prune(value: Any, schema: Mapping[str, Any]) -> Any:
    """Drop what a structural schema does not declare, as the API server does."""
    if isinstance(value, dict):
        properties = schema.get("properties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        additional = schema.get("additionalProperties")
        if properties is not None:
            result = {}
            for key, item in value.items():
                if key in properties:
                    result[key] = prune(item, properties[key])
                elif preserve:
                    result[key] = item
            return result
        if isinstance(additional, dict):
            return {key: prune(item, additional) for key, item in value.items()}
        return value
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"]) for item in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def kmock_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The patch that turns ``old`` into ``new`` in kmock's merge semantics (None deletes)."""
    diff: dict[str, Any] = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old:
            diff[key] = value
        elif isinstance(value, dict) and isinstance(old[key], dict):
            sub = kmock_diff(old[key], value)
            if sub:
                diff[key] = sub
        elif value != old[key]:
            diff[key] = value
    return diff


def _unprocessable(message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=422, reason="Invalid", message=message)


def _without(body: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in keys}


@attrs.define(kw_only=True)
class StrictKubernetesEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus metadata, status-subresource, pruning and schema rules."""

    crds: list[dict[str, Any]] = attrs.field(factory=load_crds)
    rejected: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    _schemas: dict[tuple[str, str, str], dict[str, Any]] = attrs.field(factory=dict, init=False)
    _status_subresource: set[tuple[str, str, str]] = attrs.field(factory=set, init=False)
    _last_version: int = attrs.field(default=1000, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for crd in self.crds:
            spec = crd["spec"]
            for version in spec["versions"]:
                key = (spec["group"], version["name"], spec["names"]["plural"])
                self._schemas[key] = version["schema"]["openAPIV3Schema"]
                if "status" in (version.get("subresources") or {}):
                    self._status_subresource.add(key)
                self.resources[f"{key[0]}/{key[1]}/{key[2]}"] = kmock.ResourceInfo(
                    kind=spec["names"]["kind"],
                    singular=spec["names"].get("singular"),
                    namespaced=spec["scope"] == "Namespaced",
                    shortnames=spec["names"].get("shortNames", []),
                    subresources={"status"} if key in self._status_subresource else set(),
                    verbs={"list", "watch", "get", "create", "patch", "update", "delete"},
                )

    def _next_version(self) -> int:
        self._last_version += 1
        return self._last_version

    # -- what the server does to every write ---------------------------------------------

    def _key(self, request: rendering.Request) -> tuple[str, str, str]:
        resource = request.resource
        assert resource is not None
        return (str(resource.group or ""), str(resource.version), str(resource.plural))

    def _current(self, request: rendering.Request) -> dict[str, Any] | None:
        for (resource, namespace, name), obj in self._objects.items():
            if resource == request.resource and namespace == request.namespace and name == request.name:
                return None if obj.deleted else copy.deepcopy(obj.raw)
        return None

    def _check(self, key: tuple[str, str, str], body: dict[str, Any]) -> dict[str, Any]:
        schema = self._schemas.get(key)
        if schema is not None:
            body = prune(body, schema)
            errors = sorted(
                jsonschema.Draft4Validator(schema, format_checker=_format_checker()).iter_errors(body),
                key=lambda error: list(error.absolute_path),
            )
            if errors:
                path = ".".join(str(part) for part in errors[0].absolute_path)
                self.rejected.append({"object": body, "error": f"{path}: {errors[0].message}"})
                raise _unprocessable(f"{body.get('kind')} is invalid: {path}: {errors[0].message}")
        elif key in _VALIDATED_BUILTINS:
            try:
                kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                self.rejected.append({"object": body, "error": str(error)})
                raise _unprocessable(f"{body.get('kind')} is invalid: {error}") from None
        return body

    def _admit_create(self, request: rendering.Request) -> None:
        key = self._key(request)
        body = copy.deepcopy(request.data or {})
        meta = body.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        if request.namespace and key[2] not in ("namespaces", "customresourcedefinitions"):
            meta.setdefault("namespace", request.namespace)
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(self._next_version())
        meta["generation"] = 1
        meta["creationTimestamp"] = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(transient, None)
        if key in self._status_subresource:
            body.pop("status", None)
        body = self._check(key, body)
        request.data.clear()
        request.data.update(body)

    def _admit_update(self, request: rendering.Request) -> dict[str, Any] | None:
        """Compute the object as a real server would store it; None when nothing changes."""
        key = self._key(request)
        current = self._current(request)
        if current is None:
            return None  # kmock answers 404
        data = request.data
        try:
            if isinstance(data, list):
                candidate = jsonpatch.apply_patch(current, data, in_place=False)
            elif request.method == enums.method.PUT:
                candidate = copy.deepcopy(data)
            else:
                candidate = merge_patch(current, data or {})
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise _unprocessable(f"the patch cannot be applied: {error}") from None
        wanted_version = (data.get("metadata") or {}).get("resourceVersion") if isinstance(data, dict) else None
        if wanted_version and wanted_version != current["metadata"].get("resourceVersion"):
            raise kmock.KubernetesError(status=409, reason="Conflict", message="the object has been modified")

        if request.subresource == "status":
            final = {**copy.deepcopy(current), "status": copy.deepcopy(candidate.get("status"))}
            if final["status"] is None:
                final.pop("status")
        else:
            final = copy.deepcopy(candidate)
            if key in self._status_subresource:
                final.pop("status", None)
                if "status" in current:
                    final["status"] = current["status"]
        meta = final.setdefault("metadata", {})
        for fixed in ("uid", "creationTimestamp", "name", "namespace", "generation", "resourceVersion",
                      "deletionTimestamp"):
            if fixed in current["metadata"]:
                meta[fixed] = current["metadata"][fixed]
            else:
                meta.pop(fixed, None)
        final = self._check(key, final)
        if final == current:
            return current
        meta = final["metadata"]
        if _without(final, "metadata", "status") != _without(current, "metadata", "status"):
            meta["generation"] = int(current["metadata"].get("generation") or 1) + 1
        meta["resourceVersion"] = str(self._next_version())
        object.__setattr__(request, "data", kmock_diff(current, final))
        return None

    def _admit_delete(self, request: rendering.Request) -> None:
        current = self._current(request)
        if current and current["metadata"].get("finalizers") and not current["metadata"].get("deletionTimestamp"):
            for (resource, namespace, name), obj in self._objects.items():
                if resource == request.resource and namespace == request.namespace and name == request.name:
                    obj.patch({"metadata": {"resourceVersion": str(self._next_version())}})

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if request.resource is not None:
            if request.action == enums.action.CREATE and isinstance(request.data, dict):
                self._admit_create(request)
            elif request.action == enums.action.UPDATE and request.name is not None:
                unchanged = self._admit_update(request)
                if unchanged is not None:
                    return aiohttp.web.json_response(unchanged)
            elif request.action == enums.action.DELETE and request.name is not None:
                self._admit_delete(request)
        return await super()._handle(request)

    async def _serve_list(self, request: rendering.Request) -> Any:
        """kmock's list, with the resourceVersion a watch can continue from."""
        answer = await super()._serve_list(request)
        answer["metadata"]["resourceVersion"] = str(self._last_version)
        return answer

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        """A watch that continues from ``?resourceVersion=`` like a real server's.

        kmock replays every object as ADDED and then listens, so an operator sees stale
        versions after its list, and a change made between the replay and the listening is
        lost. Here the stream is marked before the replay, and only objects changed after
        the given version are replayed.
        """
        yield b""
        assert request.resource is not None
        since = request.params.get("resourceVersion", "")
        since_version = int(since) if since.isdigit() else 0
        bus = self._buses[request.resource]
        async with self._lock:
            marker = await bus.mark()
            objs = [obj for obj in self._KubernetesEmulator__get_objs(request, strict=False) if not obj.deleted]
            events = [
                {"type": "ADDED", "object": obj.raw} for obj in objs
                if int(obj.raw.get("metadata", {}).get("resourceVersion") or 0) > since_version
            ]
        try:
            for event in events:
                yield event
            async for event in bus.stream(since=marker):
                meta = event.get("object", {}).get("metadata", {})
                if self._KubernetesEmulator__check(
                    request, request.resource, meta.get("namespace"), meta.get("name"), strict=False
                ):
                    yield event
        finally:
            await bus.unmark(marker)

    # -- helpers for tests ---------------------------------------------------------------

    def read(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a deep copy), or None."""
        for (res, ns, nm), obj in self._objects.items():
            if f"{res.group}/{res.version}/{res.plural}".lstrip("/") == resource and ns == namespace and nm == name:
                return None if obj.deleted else json.loads(json.dumps(obj.raw))
        return None
