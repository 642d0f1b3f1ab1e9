"""Property tests: generated meshes never crash the analysis, the result does not depend on
input order, and IST0101/IST0173/IST0174 agree with a direct reading of the config."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketch.analyze import analyze
from ketch.model import MeshConfig, load_documents

APPS = ["a", "b", "c"]
VERSIONS = ["v1", "v2", "v3"]


@st.composite
def meshes(draw):
    docs = []
    services = draw(st.sets(st.sampled_from(APPS)))
    for app in sorted(services):
        docs.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": app},
                     "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80}]}})
    deployed = draw(st.sets(st.tuples(st.sampled_from(APPS), st.sampled_from(VERSIONS))))
    for app, version in sorted(deployed):
        labels = {"app": app, "version": version}
        docs.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": f"{app}-{version}"},
                     "spec": {"selector": {"matchLabels": labels},
                              "template": {"metadata": {"labels": labels},
                                           "spec": {"containers": [{"name": app, "image": "x"}]}}}})
    rules = draw(st.dictionaries(st.sampled_from(APPS), st.sets(st.sampled_from(VERSIONS), min_size=1)))
    for app, subsets in sorted(rules.items()):
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                     "metadata": {"name": app},
                     "spec": {"host": app, "subsets": [{"name": v, "labels": {"version": v}} for v in sorted(subsets)]}})
    routes = draw(st.dictionaries(st.sampled_from(APPS), st.tuples(st.sampled_from(APPS), st.sampled_from(VERSIONS))))
    for host, (dest, subset) in sorted(routes.items()):
        docs.append({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                     "metadata": {"name": f"to-{host}"},
                     "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": dest, "subset": subset}}]}]}})
    return docs, services, deployed, rules, routes


def run(docs):
    result = load_documents(docs, file="gen.yaml")
    assert not result.errors, [str(e) for e in result.errors]
    return analyze(result.resources, mesh=MeshConfig())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meshes(), st.randoms(use_true_random=False))
def test_analysis_agrees_with_the_config(mesh, rnd):
    docs, services, deployed, rules, routes = mesh
    found = run(docs)
    got = {(m.code, m.resource.name, m.text) for m in found}

    shuffled = list(docs)
    rnd.shuffle(shuffled)
    assert {(m.code, m.resource.name, m.text) for m in run(shuffled)} == got

    expected = set()
    for host, (dest, subset) in routes.items():
        if dest not in services:
            expected.add(("IST0101", f"to-{host}", f'Referenced host not found: "{dest}"'))
        if subset not in rules.get(dest, set()):
            expected.add(("IST0101", f"to-{host}",
                          f'Referenced host+subset in destinationrule not found: "{dest}+{subset}"'))
    for app, subsets in rules.items():
        if app not in services:
            expected.add(("IST0174", app, f"The host {app} defined in the DestinationRule does not match "
                                          "any services in the mesh."))
            continue
        for v in subsets:
            if (app, v) not in deployed:
                expected.add(("IST0173", app, f"The Subset {v} defined in the DestinationRule does not "
                                              "select any pods. Which may lead to 503 UH (NoHealthyUpstream)."))
    relevant = {g for g in got if g[0] in ("IST0101", "IST0173", "IST0174")}
    assert relevant == expected
