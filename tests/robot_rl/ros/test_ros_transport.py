"""QoS presets and validation (robot_rl/ros/transport.py)."""

from __future__ import annotations

import pytest

from robot_rl.ros.transport import RELIABLE, SENSOR_DATA, QoS, ServiceTimeout


def test_presets_are_best_effort_sensor_data_and_reliable() -> None:
    assert QoS("best_effort", 5) == SENSOR_DATA
    assert QoS("reliable", 10) == RELIABLE
    assert QoS.sensor_data(1) == QoS("best_effort", 1)
    assert QoS.reliable(depth=50).depth == 50


@pytest.mark.parametrize("depth", [0, 6, True, 2.5])
def test_sensor_data_keeps_the_last_one_to_five(depth: object) -> None:
    with pytest.raises(ValueError, match=r"1\.\.5"):
        QoS.sensor_data(depth)  # type: ignore[arg-type]


def test_bad_qos_fields_are_named() -> None:
    with pytest.raises(ValueError, match="reliability"):
        QoS("sometimes", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        QoS("reliable", 0)


def test_a_service_timeout_is_a_timeout_error() -> None:
    assert issubclass(ServiceTimeout, TimeoutError)
