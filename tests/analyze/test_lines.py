"""Messages point at the offending field's line, in files, stdin and `kind: List` items."""

from ketch.analyze import analyze
from ketch.analyze.lines import LineResolver
from ketch.model import MeshConfig, load_text

CONFIG = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  gateways:
  - missing-gw
  http:
  - route:
    - destination:
        host: ghost
        subset: v1
---
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata:
    name: nowhere
  spec:
    host: nowhere
"""


def lines_of(text: str, resolver: LineResolver | None) -> list[tuple[str, str, int | None]]:
    result = load_text(text, file="config.yaml")
    assert not result.errors
    found = analyze(result.resources, mesh=MeshConfig(), lines=resolver)
    return sorted((m.code, m.text, m.line) for m in found)


def test_field_lines():
    got = lines_of(CONFIG, LineResolver(read={"config.yaml": CONFIG}.get))
    assert got == [
        ("IST0101", 'Referenced gateway not found: "missing-gw"', 9),
        ("IST0101", 'Referenced host not found: "ghost"', 13),
        ("IST0101", 'Referenced host+subset in destinationrule not found: "ghost+v1"', 14),
        ("IST0132", "one or more host [reviews] defined in VirtualService default/reviews not found in "
                    "Gateway default/missing-gw.", 9),
        ("IST0174", "The host nowhere defined in the DestinationRule does not match any services in the mesh.", 24),
    ]


def test_without_a_resolver_lines_are_the_documents():
    got = {line for _, _, line in lines_of(CONFIG, None)}
    assert got == {1, 19}


def test_unreadable_source_falls_back_to_document_lines():
    got = {line for _, _, line in lines_of(CONFIG, LineResolver(read=lambda name: None))}
    assert got == {1, 19}
