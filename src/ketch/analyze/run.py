"""Run the analyzers over a set of resources and decide the exit code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ketch.analyze import suppress
from ketch.analyze.analyzers import ALL, Analyzer
from ketch.analyze.context import AnalysisContext, attr
from ketch.analyze.messages import Level, Message, ResourceRef, new_message
from ketch.analyze.suppress import Suppression

FAILURE_EXIT_CODE = 79  # istioctl's "analysis found issues at or above the threshold"


def schema_messages(issues: Iterable[Any]) -> list[Message]:
    """IST0106 for every load/validation issue that names a resource; istioctl reports schema
    errors as analysis messages rather than refusing to analyse."""
    out = []
    for issue in issues:
        kind, name = attr(issue, "kind"), attr(issue, "name")
        if not kind or not name or attr(issue, "level", "Error") != "Error":
            continue
        ns = None if kind == "Namespace" else attr(issue, "namespace")
        path, reason = attr(issue, "path", ""), attr(issue, "reason", "")
        detail = f"{path}: {reason}" if path else reason
        out.append(new_message("IST0106", ResourceRef(kind, ns, name), detail,
                               file=attr(issue, "file"), line=attr(issue, "line")))
    return out


def unattributed(issues: Iterable[Any]) -> list[Any]:
    """Errors that no resource owns (unreadable files, broken YAML): input istioctl rejects."""
    return [i for i in issues if attr(i, "level", "Error") == "Error"
            and (not attr(i, "kind") or not attr(i, "name"))]


def analyze(resources: Iterable[Any], mesh: Any = None, load_errors: Iterable[Any] = (),
            analyzers: Sequence[Analyzer] = ALL, lines: Any = None,
            suppressions: Sequence[Suppression] = (), workloads: Iterable[Any] = ()) -> list[Message]:
    """Every analyzer's messages, deduplicated and in istioctl's order, less the suppressed
    ones. `lines` (a `LineResolver`) turns document lines into the offending fields' lines."""
    ctx = AnalysisContext(resources, mesh, lines, workloads)
    messages: set[Message] = set(schema_messages(load_errors))
    for analyzer in analyzers:
        messages.update(analyzer.run(ctx))
    annotations = {ctx.ref(r): attr(r.metadata, "annotations", {}) for r in ctx.resources}
    return sorted(suppress.apply(messages, suppressions, annotations), key=Message.sort_key)


def exit_code(messages: Iterable[Message], threshold: Level = Level.ERROR) -> int:
    return FAILURE_EXIT_CODE if any(m.level >= threshold for m in messages) else 0
