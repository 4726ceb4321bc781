"""The machine's state while it measures: is the GPU clocked down, is the CPU shared?

A number taken on a throttled GPU or a loaded CPU is slower for reasons that are not the code's.
Every run records the state at its start and its end in RunMeta.machine ("start" and "end"),
and the report warns when the GPU was throttled or its clock dropped between the two.

- NVIDIA GPUs, through NVML (`import pynvml`, package nvidia-ml-py; optional, imported only
  here and only on CUDA runs): SM and memory clocks (and the SM maximum), temperature, power
  draw and limit, and the reasons the driver gives for holding the clocks down.
- CPUs: the 1-minute load average against the core count, and the frequency governor where
  /sys exposes it.

Nothing here raises: a state that cannot be read says why under "unavailable".
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
# NVML's clock event ("throttle") reason bits, as documented for nvmlDeviceGetCurrentClocksEventReasons.
THROTTLE_REASONS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# The reasons that mean the GPU ran slower than it could have: the others are choices or idleness.
SLOWDOWNS = ("sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown")
CLOCK_DROP = 0.10  # an SM clock this much lower at the end than at the start is worth a warning
NVML_HINT = "pip install nvidia-ml-py"


def load_average() -> float | None:
    """The 1-minute load average now (None where the OS has none): the one reading of the CPU's
    load that every record of a run takes. Above the core count, more work wanted the CPUs than
    there were CPUs."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not every platform has a load average
        return None


def cpu_state() -> dict:
    """Load average over the last minute against the cores, and the frequency governor."""
    cores = os.cpu_count() or 1
    state: dict = {"cores": cores}
    load = load_average()
    if load is None:
        state["load_1min"] = None
    else:
        state.update(load_1min=round(load, 2), load_per_core=round(load / cores, 3))
    try:
        state["governor"] = GOVERNOR.read_text().strip()
    except OSError:
        state["governor"] = None
    return state


def _nvml_handle(pynvml, device: torch.device):
    """NVML's handle of torch's device: by PCI bus id (CUDA_VISIBLE_DEVICES renumbers devices,
    NVML does not), by index where torch does not expose the bus id."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    if all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        bus_id = f"{props.pci_domain_id:08X}:{props.pci_bus_id:02X}:{props.pci_device_id:02X}.0"
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def decode_reasons(mask: int) -> list[str]:
    return [name for bit, name in THROTTLE_REASONS.items() if mask & bit]


def gpu_state(device: torch.device) -> dict:
    """Clocks (MHz), temperature (C), power (W) and throttle reasons of a CUDA device via NVML."""
    try:
        import pynvml
    except ImportError:
        return {"unavailable": f"nvidia-ml-py is not installed ({NVML_HINT})"}
    try:
        pynvml.nvmlInit()
    except Exception as e:  # noqa: BLE001 - NVML's errors are its own classes; any one means no state
        return {"unavailable": f"NVML did not start: {e}"}
    try:
        h = _nvml_handle(pynvml, device)
        reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or (
            pynvml.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        return {
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
            "max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM),
            "mem_clock_mhz": pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
            "temperature_c": pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
            "power_w": pynvml.nvmlDeviceGetPowerUsage(h) / 1000,
            "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000,
            "throttle_reasons": decode_reasons(int(reasons(h))),
        }
    except Exception as e:  # noqa: BLE001 - see above
        return {"unavailable": f"NVML query failed: {e}"}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001, S110 - shutting down what may not have started
            pass


def machine_state(device: torch.device) -> dict:
    """The state now: the CPU's always, the GPU's on CUDA runs."""
    state = {"cpu": cpu_state()}
    if device.type == "cuda":
        state["gpu"] = gpu_state(device)
    return state


def record(recorded: dict, when: str, device: torch.device) -> dict:
    """RunMeta.machine with the state now, read afresh, under `when` ("start" or "end"), and its
    CPU load also as "load_<when>" beside "cores" (what the report's Noise rules read). Every
    other key already there is kept; a resumed run's earlier readings are replaced, never reused."""
    state = machine_state(device)
    cpu = state["cpu"]
    load = {} if cpu["load_1min"] is None else {f"load_{when}": cpu["load_1min"], "cores": cpu["cores"]}
    return {**recorded, **load, when: state}


def warnings(recorded: dict) -> list[str]:
    """What the report should say about the run's machine: throttling at its start or end, an SM
    clock that dropped by more than CLOCK_DROP between them (both samples not idle)."""
    gpu = {when: recorded.get(when, {}).get("gpu", {}) for when in ("start", "end")}
    out = []
    for when, state in gpu.items():
        slow = [r for r in state.get("throttle_reasons", []) if r in SLOWDOWNS]
        if slow:
            out.append(f"GPU throttled at the {when} of the run: {', '.join(slow)}")
    start, end = gpu["start"].get("sm_clock_mhz"), gpu["end"].get("sm_clock_mhz")
    idle = any("gpu_idle" in s.get("throttle_reasons", []) for s in gpu.values())
    if start and end and not idle and end < (1 - CLOCK_DROP) * start:
        out.append(f"GPU SM clock dropped during the run: {start} MHz at the start, {end} MHz at the end")
    return out


def summary(recorded: dict) -> str:
    """One line of the GPU's state and the CPU governor at start and end, for the report's
    environment table (the load average has its own line there)."""
    parts = []
    for when in ("start", "end"):
        state = recorded.get(when)
        if not state:
            continue
        governor, gpu = state.get("cpu", {}).get("governor"), state.get("gpu")
        text = []
        if gpu and "unavailable" in gpu:
            text.append(f"GPU state unavailable ({gpu['unavailable']})")
        elif gpu:
            reasons = ", ".join(gpu.get("throttle_reasons", [])) or "none"
            text.append(
                f"SM {gpu['sm_clock_mhz']}/{gpu['max_sm_clock_mhz']} MHz, memory {gpu['mem_clock_mhz']} MHz, "
                f"{gpu['temperature_c']} C, {gpu['power_w']:.0f}/{gpu['power_limit_w']:.0f} W, clock reasons: {reasons}"
            )
        if governor:
            text.append(f"CPU governor {governor}")
        if text:
            parts.append(f"{when}: " + ", ".join(text))
    return "; ".join(parts) or "not recorded"
