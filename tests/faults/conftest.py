"""Fault suite: a session-wide record of each injected fault, printed as a table at the end."""

from __future__ import annotations

import pytest

_ROWS: list[dict] = []


class FaultReport:
    def add(self, fault: str, audit, seconds: float, note: str = "") -> None:
        _ROWS.append({"fault": fault, "scenes": audit.scenes, "lost": audit.lost, "duplicated": audit.duplicated,
                      "alerts": audit.alerts, "webhooks": audit.webhooks, "seconds": seconds, "note": note})


@pytest.fixture(scope="session")
def fault_report() -> FaultReport:
    return FaultReport()


def pytest_terminal_summary(terminalreporter) -> None:
    if not _ROWS:
        return
    cols = ("fault", "scenes", "lost", "duplicated", "alerts", "webhooks", "seconds", "note")
    rows = [{**r, "seconds": f"{r['seconds']:.0f}"} for r in _ROWS]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    terminalreporter.section("fault injection summary")
    line = lambda r: " | ".join(str(r[c]).ljust(width[c]) for c in cols)  # noqa: E731
    terminalreporter.write_line(line({c: c for c in cols}))
    terminalreporter.write_line("-+-".join("-" * width[c] for c in cols))
    for r in rows:
        terminalreporter.write_line(line(r))


@pytest.fixture(scope="module")
def ray_node2(stack):
    """The stack's second Ray node: the multi-node mode's (``Settings.ray_nodes`` 2, started with the stack), or
    one started here for the module and stopped after it. A test that kills it leaves the multi-node stack's
    node started again at the end."""
    from terrawatch_dev.stack.ray_head import RayNode

    node = stack.ray_nodes[0] if stack.ray_nodes else RayNode(stack.settings)
    node.start()
    node.wait(300)
    yield node
    if not stack.ray_nodes:
        node.stop()
    elif not node.healthy():
        node.start()
        node.wait(300)
