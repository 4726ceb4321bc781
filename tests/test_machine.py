"""The machine's state: CPU load and governor, the GPU through a stand-in for NVML (its clocks,
throttle reasons, and why there is no state when NVML is absent), merging into RunMeta.machine,
and the report's warnings."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from synthetic_results import build_report

from suite.core import machine
from tests.synthetic_results import row, write


def test_cpu_state_has_load_against_cores():
    state = machine.cpu_state()
    assert state["cores"] >= 1
    if state["load_1min"] is not None:
        assert state["load_per_core"] == pytest.approx(state["load_1min"] / state["cores"], abs=0.01)
    assert "governor" in state


def fake_nvml(sm: int = 1980, reasons: int = 0, fail: bool = False) -> types.ModuleType:
    """Just the NVML calls suite.core.machine makes, answering fixed values."""
    nvml = types.ModuleType("pynvml")
    nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM, nvml.NVML_TEMPERATURE_GPU = 1, 2, 0

    def init() -> None:
        if fail:
            raise RuntimeError("Driver Not Loaded")

    nvml.nvmlInit, nvml.nvmlShutdown = init, lambda: None
    nvml.nvmlDeviceGetHandleByPciBusId = nvml.nvmlDeviceGetHandleByIndex = lambda key: "handle"
    nvml.nvmlDeviceGetClockInfo = lambda h, kind: sm if kind == 1 else 2619
    nvml.nvmlDeviceGetMaxClockInfo = lambda h, kind: 1980
    nvml.nvmlDeviceGetTemperature = lambda h, kind: 71
    nvml.nvmlDeviceGetPowerUsage = lambda h: 650_000
    nvml.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    nvml.nvmlDeviceGetCurrentClocksThrottleReasons = lambda h: reasons
    return nvml


@pytest.fixture
def cuda_props(monkeypatch):
    """torch's view of one CUDA device, so the NVML path runs without one."""
    props = types.SimpleNamespace(pci_domain_id=0, pci_bus_id=0x17, pci_device_id=0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_gpu_state_through_nvml(monkeypatch, cuda_props):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(sm=1755, reasons=0x4 | 0x20))
    state = machine.gpu_state(torch.device("cuda", 0))
    assert state["sm_clock_mhz"] == 1755 and state["max_sm_clock_mhz"] == 1980 and state["mem_clock_mhz"] == 2619
    assert state["temperature_c"] == 71 and state["power_w"] == 650 and state["power_limit_w"] == 700
    assert state["throttle_reasons"] == ["sw_power_cap", "sw_thermal_slowdown"]


def test_gpu_state_says_why_it_is_missing(monkeypatch, cuda_props):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert "pip install nvidia-ml-py" in machine.gpu_state(torch.device("cuda"))["unavailable"]
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(fail=True))
    assert "Driver Not Loaded" in machine.gpu_state(torch.device("cuda"))["unavailable"]


def test_record_reads_the_load_afresh_and_keeps_other_keys(monkeypatch):
    # A resumed run's record holds the load of its earlier session: never reused.
    recorded = {"load_start": 99.0, "cores": 7, "other": 1}
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 7)
    merged = machine.record(recorded, "start", torch.device("cpu"))
    assert merged["other"] == 1 and merged["load_start"] == 3.5 and merged["cores"] == 7
    assert merged["start"]["cpu"]["load_1min"] == 3.5 and merged["start"]["cpu"]["load_per_core"] == 0.5
    merged = machine.record(merged, "end", torch.device("cpu"))
    assert {"start", "end", "other", "load_end"} <= set(merged) and "gpu" not in merged["end"]
    monkeypatch.setattr(machine.os, "getloadavg", lambda: (_ for _ in ()).throw(OSError("no load average")))
    bare = machine.record({}, "start", torch.device("cpu"))
    assert "load_start" not in bare and bare["start"]["cpu"]["load_1min"] is None


def gpu_run(start_sm: int, end_sm: int, end_reasons: list[str]) -> dict:
    def state(sm: int, reasons: list[str]) -> dict:
        gpu = dict(sm_clock_mhz=sm, max_sm_clock_mhz=1980, mem_clock_mhz=2619, temperature_c=60)
        return {
            "cpu": {"load_1min": 0.1, "cores": 16},
            "gpu": {**gpu, "power_w": 300.0, "power_limit_w": 700.0, "throttle_reasons": reasons},
        }

    return {"start": state(start_sm, []), "end": state(end_sm, end_reasons)}


def test_warnings_on_throttling_and_clock_drops():
    assert machine.warnings(gpu_run(1980, 1950, [])) == []
    assert machine.warnings(gpu_run(1980, 1980, ["sync_boost"])) == []  # not a slowdown
    (throttled,) = machine.warnings(gpu_run(1980, 1980, ["hw_thermal_slowdown"]))
    assert "throttled at the end" in throttled and "hw_thermal_slowdown" in throttled
    (dropped,) = machine.warnings(gpu_run(1980, 1400, []))
    assert "1980 MHz at the start, 1400 MHz at the end" in dropped
    assert machine.warnings(gpu_run(1980, 1400, ["gpu_idle"])) == []  # an idle GPU clocks down by design
    assert machine.warnings({}) == []
    assert "SM 1400/1980 MHz" in machine.summary(gpu_run(1980, 1400, []))


def test_report_shows_the_state_and_warns_about_a_throttled_gpu(tmp_path):
    rows = [row("indrnn_triton", 1.0), row("lstm", 5.0)]
    calm = build_report(write(tmp_path / "calm.csv", rows, machine=gpu_run(1980, 1975, [])))
    assert "SM 1975/1980 MHz" in calm and "Warning: GPU" not in calm
    hot = build_report(write(tmp_path / "hot.csv", rows, machine=gpu_run(1980, 1400, ["hw_thermal_slowdown"])))
    assert "**Warning: GPU throttled at the end of the run: hw_thermal_slowdown.**" in hot
    assert "**Warning: GPU SM clock dropped during the run" in hot
