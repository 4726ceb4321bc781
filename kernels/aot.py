"""Ahead-of-time compilation of the recurrence kernels for a GPU that is not here.

`triton.compile` lowers a kernel to PTX and a cubin for any CUDA target without a GPU. The
cubin's resource usage (registers, spills, shared memory), the PTX's global memory instructions
and the SASS of the hot loop (kernels/sass.py) are deterministic facts about the generated code:
the GPU-less signal that a kernel is fast-shaped (wide vector loads, no spills, loads issued far
enough ahead), and with the work a kernel declares, the input of the static speed model
(kernels/speed.py). Tests and `run_bench.py kernel-report` read them from here.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.autotuner import Autotuner

from kernels import sass
from kernels.common import interpreter_enabled
from kernels.scan import (
    scan_bwd_kernel,
    scan_bwd_maps_kernel,
    scan_carry_kernel,
    scan_fwd_kernel,
    scan_fwd_maps_kernel,
)
from kernels.sequential import BWD_WORK, FWD_WORK, recurrence_bwd_kernel, recurrence_fwd_kernel
from kernels.speed import GPUS, SIZES, Work, model

DTYPES = ("fp32", "fp16", "bf16")

# Pointers that hold data in the input dtype; every other pointer is fp32 state or gradient.
DATA_POINTERS = {"p_x", "p_h", "p_dh", "p_dx"}

# The specialisation a real launch gets with a (T, 256, 2048) input: aligned pointers and
# sizes divisible by 16. T is never specialised (do_not_specialize).
DIVISIBLE_INTS = {"n_cols", "H", "stride_t", "stride_b", "stride_ht", "stride_hb", "stride_dt", "stride_db"}

KERNELS = {
    "recurrence_fwd": (
        recurrence_fwd_kernel,
        {"HAS_BIAS": True, "HAS_H0": True, "HAS_LENGTHS": False, "REVERSE": False, "ACT": 0},
    ),
    "recurrence_bwd": (recurrence_bwd_kernel, {"HAS_H0": True, "HAS_LENGTHS": False, "REVERSE": False, "ACT": 0}),
    # The chunked scan's passes (kernels/scan.py). Under REPORT_CONFIG a chunk is one sub-chunk of
    # CHUNK steps (SUB = 8), and the carry has four columns a thread where its launcher gives it one,
    # so it takes groups of 4 chunk maps (two in flight) rather than 16. The backward's carry is the
    # same kernel without bounds, walking down.
    "scan_fwd_maps": (scan_fwd_maps_kernel, {"HAS_BIAS": True, "HAS_LENGTHS": False, "REVERSE": False, "SUB": 8}),
    "scan_carry": (scan_carry_kernel, {"HAS_INIT": True, "HAS_BOUNDS": True, "DESCENDING": False, "GROUP": 4}),
    "scan_fwd": (scan_fwd_kernel, {"HAS_BIAS": True, "HAS_LENGTHS": False, "REVERSE": False, "SUB": 8}),
    "scan_bwd_maps": (scan_bwd_maps_kernel, {"HAS_LENGTHS": False, "REVERSE": False, "SUB": 8}),
    "scan_bwd": (scan_bwd_kernel, {"HAS_H0": True, "HAS_LENGTHS": False, "REVERSE": False, "SUB": 8}),
}

# What each kernel's hot loop does and the configs meant for each size: the speed model's input
# besides the compiled code. A kernel without an entry is compiled at REPORT_CONFIG, unmodelled.
WORK: dict[str, Work] = {"recurrence_fwd": FWD_WORK, "recurrence_bwd": BWD_WORK}
REPORT_CONFIG = {"BLOCK": 512, "CHUNK": 8, "num_warps": 4}


@dataclass(frozen=True)
class KernelFacts:
    """What the compiled code of one kernel looks like on one target."""

    kernel: str
    dtype: str
    cc: int
    registers: int
    spill_bytes: int  # LOCAL memory per thread: register spills
    stack_bytes: int
    shared_bytes: int
    load_width_bits: int  # widest global load, e.g. 128 for ld.global.v4.b32
    store_width_bits: int
    ptx_counts: dict  # instruction kind -> count in the PTX, e.g. {"ld.global": 16, "fma": 8}
    config: dict  # BLOCK, CHUNK, ..., num_warps
    size: str | None  # the size of kernels.speed.SIZES the config is meant for, None for REPORT_CONFIG
    loop: dict  # the hot loop of the SASS: see loop_facts
    modeled: list  # kernels.speed.Modeled of each GPU of this target at `size`, as dicts


def _jit_fn(kernel):
    """The JITFunction to compile: a kernel object (unwrapped from its autotuner) or a
    "path.py:name" string naming a kernel in another file (a variant written for a test)."""
    if isinstance(kernel, str):
        path, name = kernel.rsplit(":", 1)
        spec = importlib.util.spec_from_file_location("_aot_" + Path(path).stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        kernel = getattr(module, name)
    # Only the autotuner is unwrapped: a bare JITFunction's `.fn` is the plain Python function.
    return kernel.fn if isinstance(kernel, Autotuner) else kernel


def compile_kernel(kernel, dtype: str, cc: int, constexprs: dict, num_warps: int):
    """Compile a Triton kernel for sm_<cc> with the specialisation a real launch would get. Flags the
    kernel does not take are dropped: a variant written for a test may predate a flag."""
    fn = _jit_fn(kernel)
    constexprs = {name: value for name, value in constexprs.items() if name in fn.arg_names}
    signature, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in constexprs:
            signature[name] = "constexpr"
        elif name.startswith("p_"):
            signature[name] = "*" + (dtype if name in DATA_POINTERS else "fp32")
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "i32"
            if name in DIVISIBLE_INTS:
                attrs[(i,)] = [["tt.divisibility", 16]]
    source = ASTSource(fn, signature, constexprs, attrs)
    # FP fusion pinned on (the JIT's default through triton 3.9) so fma/add counts do not move
    # with a triton release that changes the default.
    options = {"num_warps": num_warps, "enable_fp_fusion": True}
    return triton.compile(source, target=GPUTarget("cuda", cc, 32), options=options)


def resource_usage(cubin: bytes) -> dict[str, int]:
    """REG, STACK, SHARED and LOCAL of the (single) function in a cubin, via cuobjdump."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        out = subprocess.run(
            [sass.cuobjdump(), "--dump-resource-usage", path], capture_output=True, text=True, check=True
        ).stdout
    fields = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", out))
    return {k: int(v) for k, v in fields.items()}


def _access_width(ptx: str, op: str) -> int:
    """Widest `op` (ld.global / st.global) in bits: vector count times element bits."""
    widest = 0
    for vec, bits in re.findall(rf"{re.escape(op)}(?:\.\w+)*?(?:\.v(\d))?\.[bfu](\d+)\b", ptx):
        widest = max(widest, int(vec or 1) * int(bits))
    return widest


PTX_KINDS = ("ld.global", "st.global", "fma", "mul", "add", "max", "setp", "selp", "cvt", "ex2", "rcp", "bra")


def ptx_counts(ptx: str) -> dict[str, int]:
    """How many PTX instructions of each kind the kernel has (static count, not executed)."""
    body = [re.sub(r"^@!?%\w+\s+", "", line.strip()) for line in ptx.splitlines()]  # drop predicates
    return {
        kind: sum(1 for line in body if line.startswith(kind + ".") or line.startswith(kind + " "))
        for kind in PTX_KINDS
    }


def loop_facts(loop: sass.Loop, unit: str, units_per_iteration: int) -> dict:
    """The hot loop in figures: instructions and issue cycles per iteration, the load-to-drain
    distance D, loads by scoreboard and the instruction mix, and what one iteration covers."""
    drain = loop.drain_distance()
    return {
        "closed": loop.closed,
        "unit": unit,
        "instructions": len(loop.body),
        "issue_cycles": loop.issue_cycles,
        "units_per_iteration": units_per_iteration,
        "drain_distance": drain[0] if drain else None,
        "drained_by": drain[2].opcode if drain else None,  # a use of the load, or a copy of it (a rotation)
        "loads_by_scoreboard": {f"SB{b}": n for b, n in loop.loads_by_barrier().items()},
        "mix": loop.mix(),
    }


def _facts_here(
    name: str, dtype: str, cc: int, config: dict | None, size: str | None, source: str | None
) -> KernelFacts:
    default_kernel, flags = KERNELS[name]
    work = WORK.get(name)
    config = dict(config or (work.configs[size] if work and size else REPORT_CONFIG))
    num_warps = config["num_warps"]
    constexprs = {k: v for k, v in config.items() if k != "num_warps"}
    compiled = compile_kernel(source or default_kernel, dtype, cc, {**flags, **constexprs}, num_warps)
    usage = resource_usage(compiled.asm["cubin"])
    ptx = compiled.asm["ptx"]
    (instructions,) = sass.parse_sass(sass.disassemble(compiled.asm["cubin"])).values()
    loop = sass.hot_loop(instructions)
    registers, shared = usage.get("REG", 0), compiled.metadata.shared
    unit, units = (work.unit, work.units_per_iteration(config)) if work else ("iteration", 1)
    modeled = []
    if work is not None and size is not None:
        element_bytes = 4 if dtype == "fp32" else 2
        modeled = [
            asdict(model(loop, registers, shared, config, work, SIZES[size], element_bytes, gpu))
            for gpu in GPUS
            if gpu.cc == cc
        ]
    return KernelFacts(
        kernel=name,
        dtype=dtype,
        cc=cc,
        registers=registers,
        spill_bytes=usage.get("LOCAL", 0),
        stack_bytes=usage.get("STACK", 0),
        shared_bytes=usage.get("SHARED", 0),
        load_width_bits=_access_width(ptx, "ld.global"),
        store_width_bits=_access_width(ptx, "st.global"),
        ptx_counts=ptx_counts(ptx),
        config=config,
        size=size,
        loop=loop_facts(loop, unit, units),
        modeled=modeled,
    )


def compile_facts(jobs: list[dict]) -> list[KernelFacts]:
    """Facts for many compilations. A job is a dict: name (of KERNELS), dtype, cc, and optionally
    size (of kernels.speed.SIZES: compile the config the kernel's Work declares for it and model it
    there), config (BLOCK, CHUNK, num_warps; default: the size's, else REPORT_CONFIG) and a variant
    with the same arguments, as a `kernel` object or a "path.py:function" `source`.

    Under TRITON_INTERPRET=1 (the CPU test setup) `@triton.jit` made interpreted functions,
    and even Triton's own library functions are interpreted, so nothing can be lowered to PTX
    in this process: the jobs then run in one child process with the interpreter off."""
    if not interpreter_enabled():
        return [_facts_here(**_job(j)) for j in jobs]
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "kernels.aot"],
        input=json.dumps([_job(j) for j in jobs]),
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ahead-of-time compilation failed:\n{done.stderr.strip()[-2000:]}")
    return [KernelFacts(**f) for f in json.loads(done.stdout)]


def _job(job: dict) -> dict:
    """Normalise a job; a `kernel` object is turned into its "file:name" source."""
    job = dict(job)
    kernel = job.pop("kernel", None)
    if kernel is not None and job.get("source") is None:
        fn = getattr(kernel, "fn", kernel)
        fn = getattr(fn, "fn", fn)  # an interpreted function wraps the Python function
        job["source"] = f"{inspect.getsourcefile(fn)}:{fn.__name__}"
    return {"config": None, "size": None, "source": None, **job}


if __name__ == "__main__":  # the child process of compile_facts: jobs on stdin, facts on stdout
    print(json.dumps([asdict(_facts_here(**job)) for job in json.load(sys.stdin)]))
