"""Resources for the store tests, built from Istio YAML through the model."""

from __future__ import annotations

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  namespace: {ns}
spec:
  hosts: [{host}]
  http:
  - route:
    - destination: {{host: {host}, subset: v1}}
      weight: {w1}
    - destination: {{host: {host}, subset: v2}}
      weight: {w2}
"""

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: {name}
  namespace: {ns}
spec:
  host: {name}
  subsets:
  - name: v1
    labels: {{version: v1}}
  - name: v2
    labels: {{version: v2}}
"""


def load_one(text: str):
    from ketch.model import load_text

    result = load_text(text, file="test.yaml")
    assert not [e for e in result.errors if e.level == "Error"], result.errors
    (resource,) = result.resources
    return resource


def vs(name: str = "reviews", ns: str = "default", w1: int = 100, host: str | None = None):
    return load_one(VS.format(name=name, ns=ns, host=host or name, w1=w1, w2=100 - w1))


def dr(name: str = "reviews", ns: str = "default"):
    return load_one(DR.format(name=name, ns=ns))


def invalid_vs(name: str = "broken"):
    """A VirtualService with no hosts: typed fine, rejected by Istio's validation."""
    good = vs(name)
    return good.model_copy(update={"spec": good.spec.model_copy(update={"hosts": ()})})


def validator(resource):
    """The model's validation, plus Istio's "at least one host" rule for VirtualService in
    case the model does not enforce it yet, so the store's atomicity is tested either way."""
    from ketch.model import Issue, validate

    issues = list(validate(resource))
    if (
        resource.kind == "VirtualService"
        and not resource.spec.hosts
        and not any(i.path.startswith("spec.hosts") for i in issues)
    ):
        issues.append(
            Issue("", 0, "VirtualService", resource.namespace, resource.name, "spec.hosts",
                  "virtual service must have at least one host")
        )
    return issues
