"""Fixtures of the chart render tests (test_chart_*.py): each scenario of chartlib.SCENARIOS
and the defaults are rendered once for the whole run."""

from __future__ import annotations

from typing import Any

import pytest

from chartlib import SCENARIOS, render_objects


@pytest.fixture(scope="session", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    values = SCENARIOS[request.param]
    return request.param, values, render_objects(values)


@pytest.fixture(scope="session")
def default_objs() -> list[dict[str, Any]]:
    return render_objects()
