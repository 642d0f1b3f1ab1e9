from ketch.analyze import CATALOGUE, Level, ResourceRef
from ketch.analyze.messages import new_message, render
from ketch.analyze.run import exit_code

LISTED = """IST0002 IST0101 IST0106 IST0109 IST0112 IST0118 IST0127 IST0128 IST0129 IST0130 IST0131
IST0132 IST0134 IST0145 IST0149 IST0151 IST0152 IST0153 IST0154 IST0155 IST0157 IST0159 IST0160
IST0162 IST0165 IST0173 IST0174 IST0177""".split()


EXTRA = ["IST0110", "IST0111", "IST0116", "IST0137"]  # Istio's, needing only config too


def test_catalogue_covers_every_code_the_issue_lists():
    assert sorted(CATALOGUE) == sorted(LISTED + EXTRA)


def test_levels_are_istios():
    errors = {c for c, t in CATALOGUE.items() if t.level is Level.ERROR}
    infos = {c for c, t in CATALOGUE.items() if t.level is Level.INFO}
    assert errors == {"IST0101", "IST0106", "IST0109", "IST0110", "IST0111", "IST0112", "IST0145", "IST0149", "IST0152",
                      "IST0153", "IST0154", "IST0159", "IST0160", "IST0173"}
    assert infos == {"IST0118", "IST0131"}


def test_go_verbs_render_like_fmt():
    assert render("Referenced %s not found: %q", "host", 'a"b') == 'Referenced host not found: "a\\"b"'
    assert render("ports %v, n=%d, %t, 100%%", [9080, 9090], 3, True) == "ports [9080 9090], n=3, true, 100%"


def test_text_line_is_istioctls():
    m = new_message("IST0101", ResourceRef("VirtualService", "default", "reviews"),
                    "host+subset in destinationrule", "reviews+v9", file="file.yaml", line=12)
    assert str(m) == ('Error [IST0101] (VirtualService default/reviews file.yaml:12) '
                      'Referenced host+subset in destinationrule not found: "reviews+v9"')
    cluster_scoped = new_message("IST0002", ResourceRef("Namespace", None, "x"), "old")
    assert str(cluster_scoped) == "Warning [IST0002] (Namespace x) Deprecated: old"


def test_exit_code_follows_threshold():
    warning = new_message("IST0134", ResourceRef("ServiceEntry", "default", "se"))
    info = new_message("IST0118", ResourceRef("Service", "default", "s"), "p", 1, "1")
    assert exit_code([warning, info]) == 0
    assert exit_code([warning, info], Level.WARNING) == 79
    assert exit_code([info], Level.WARNING) == 0
    assert exit_code([info], Level.INFO) == 79
    assert exit_code([]) == 0
