"""Rules for every kind: object metadata, and the kinds Ketch does not enforce yet."""

from __future__ import annotations

from ketch.model.kinds import KINDS
from ketch.model.resource import Resource
from ketch.model.validation import checks
from ketch.model.validation.context import Ctx
from ketch.model.validation.paths import Path

_SUBDOMAIN = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
_LABEL = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"


def metadata(resource: Resource, ctx: Ctx) -> None:
    meta = resource.metadata
    path = Path("metadata")
    if resource.kind_id == "Namespace":
        if not checks.is_dns1123_label(meta.name):
            ctx.error(path / "name", f'Invalid value: "{meta.name}": {_LABEL}')
    elif not checks.is_dns1123_subdomain(meta.name):
        ctx.error(path / "name", f'Invalid value: "{meta.name}": {_SUBDOMAIN}')
    if meta.namespace and not checks.is_dns1123_label(meta.namespace):
        ctx.error(path / "namespace", f'Invalid value: "{meta.namespace}": {_LABEL}')
    ctx.labels(path / "labels", meta.labels)
    if "istio.io/dry-run" in meta.annotations and resource.kind_id != "AuthorizationPolicy":
        ctx.error((path / "annotations").key("istio.io/dry-run"), f"{resource.namespace}/{resource.name} has unsupported annotation istio.io/dry-run, please remove the annotation")
    if "istio.io/always-reject" in meta.annotations:
        ctx.error((path / "annotations").key("istio.io/always-reject"), '"istio.io/always-reject" annotation found, rejecting')


def not_enforced(resource: Resource, ctx: Ctx) -> None:
    info = KINDS.get(resource.kind_id)
    if info is None:
        ctx.error("kind", f'unknown kind "{resource.kind}" ({resource.api_version})')
    elif not info.enforced:
        ctx.warn("", f"{resource.kind} ({resource.api_version}) is accepted and stored, but Ketch does not enforce it yet")


RULES = {"*": [metadata, not_enforced]}
