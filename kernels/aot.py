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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.autotuner import Autotuner
from triton.runtime.cache import get_cache_manager

from kernels import sass, scan
from kernels.common import interpreter_enabled
from kernels.sequential import BWD_WORK, FWD_WORK, recurrence_bwd_kernel, recurrence_fwd_kernel
from kernels.speed import GPUS, SIZES, Modeled, Work, in_sequence, model

DTYPES = ("fp32", "fp16", "bf16")

# Pointers that hold data in the input dtype; every other pointer is fp32 state or gradient.
DATA_POINTERS = {"p_x", "p_h", "p_dh", "p_dx"}

# The specialisation a real launch gets with a (T, 256, 2048) input: aligned pointers and
# sizes divisible by 16. T is never specialised (do_not_specialize).
DIVISIBLE_INTS = {"n_cols", "H", "stride_t", "stride_b", "stride_ht", "stride_hb", "stride_dt", "stride_db"}

# Each kernel with the flags it is compiled with. The chunked scan's carry (pass 2) is one kernel
# compiled twice: the forward's walks clamped maps up from h0, the backward's affine maps down.
KERNELS = {
    "recurrence_fwd": (
        recurrence_fwd_kernel,
        {"HAS_BIAS": True, "HAS_H0": True, "HAS_LENGTHS": False, "REVERSE": False, "ACT": 0},
    ),
    "recurrence_bwd": (recurrence_bwd_kernel, {"HAS_H0": True, "HAS_LENGTHS": False, "REVERSE": False, "ACT": 0}),
    "scan_fwd_maps": (scan.scan_fwd_maps_kernel, {"HAS_BIAS": True, "HAS_LENGTHS": False, "REVERSE": False}),
    "scan_fwd_carry": (scan.scan_carry_kernel, {"HAS_INIT": True, "HAS_BOUNDS": True, "DESCENDING": False}),
    "scan_fwd": (scan.scan_fwd_kernel, {"HAS_BIAS": True, "HAS_LENGTHS": False, "REVERSE": False}),
    "scan_bwd_maps": (scan.scan_bwd_maps_kernel, {"HAS_LENGTHS": False, "REVERSE": False}),
    "scan_bwd_carry": (scan.scan_carry_kernel, {"HAS_INIT": False, "HAS_BOUNDS": False, "DESCENDING": True}),
    "scan_bwd": (scan.scan_bwd_kernel, {"HAS_H0": True, "HAS_LENGTHS": False, "REVERSE": False}),
}

# What each kernel's hot loop does and the configs meant for each size: the speed model's input
# besides the compiled code.
WORK: dict[str, Work] = {
    "recurrence_fwd": FWD_WORK,
    "recurrence_bwd": BWD_WORK,
    "scan_fwd_maps": scan.FWD_MAPS_WORK,
    "scan_fwd_carry": scan.FWD_CARRY_WORK,
    "scan_fwd": scan.FWD_STEPS_WORK,
    "scan_bwd_maps": scan.BWD_MAPS_WORK,
    "scan_bwd_carry": scan.BWD_CARRY_WORK,
    "scan_bwd": scan.BWD_STEPS_WORK,
}

# The launches of each schedule, in order, per direction. The walk's bytes (read the inputs and
# write the output once) are the floor both are held to.
SCHEDULES = {
    "forward": {"walk": ("recurrence_fwd",), "scan": ("scan_fwd_maps", "scan_fwd_carry", "scan_fwd")},
    "backward": {"walk": ("recurrence_bwd",), "scan": ("scan_bwd_maps", "scan_bwd_carry", "scan_bwd")},
}


def takes_data(name: str) -> bool:
    """Whether a kernel reads or writes data in the input dtype. One that does not (the carry moves
    only fp32 records) compiles to the same code in every dtype."""
    return bool(DATA_POINTERS & set(_jit_fn(KERNELS[name][0]).arg_names))


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
    size: str | None  # the size of kernels.speed.SIZES it is modelled at, None for none
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


def resources_and_sass(compiled) -> tuple[dict[str, int], str]:
    """REG, STACK, SHARED and LOCAL of the (single) function of a compiled kernel, and its SASS listing:
    one cuobjdump, whose resource usage comes before the code. The listing is kept beside the cubin in
    triton's cache: it depends only on the cubin and on the cuobjdump triton bundles, both covered by
    the cache key, and disassembling is most of the time of a run whose compilations are cached."""
    cache = get_cache_manager(compiled.hash)
    name = f"{compiled.name}.sass"
    path = cache.get_file(name)
    if path is None:
        path = cache.put(sass.disassemble(compiled.asm["cubin"], "--dump-resource-usage"), name, binary=False)
    listing = Path(path).read_text()
    fields = dict(re.findall(r"\b(REG|STACK|SHARED|LOCAL):(\d+)", listing.split("code for", 1)[0]))
    return {k: int(v) for k, v in fields.items()}, listing


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


def loop_facts(loop: sass.Loop, unit: str, units_per_iteration: int, columns_per_thread: int) -> dict:
    """The hot loop in figures: instructions and issue cycles per iteration, the load-to-drain
    distance D, loads by scoreboard and the instruction mix, and what one iteration covers (units of
    the kernel's work, each of `columns_per_thread` columns in every thread)."""
    drain = loop.drain_distance()
    return {
        "closed": loop.closed,
        "unit": unit,
        "instructions": len(loop.body),
        "issue_cycles": loop.issue_cycles,
        "units_per_iteration": units_per_iteration,
        "columns_per_thread": columns_per_thread,
        "drain_distance": drain[0] if drain else None,
        "drained_by": drain[2].opcode if drain else None,  # a use of the load, or a copy of it (a rotation)
        "loads_before_first_use": loop.loads_before_first_use(),
        "loads_by_scoreboard": {f"SB{b}": n for b, n in loop.loads_by_barrier().items()},
        "mix": loop.mix(),
    }


def _compiled_facts(name: str, dtype: str, cc: int, config: dict, source: str | None, sizes: list) -> list[dict]:
    """Compile one kernel at one config and describe it, modelled at each of `sizes` (None: not
    modelled): one KernelFacts (as a dict) per size."""
    default_kernel, flags = KERNELS[name]
    work = WORK.get(name)
    num_warps = config["num_warps"]
    constexprs = {k: v for k, v in config.items() if k != "num_warps"}
    compiled = compile_kernel(source or default_kernel, dtype, cc, {**flags, **constexprs}, num_warps)
    usage, listing = resources_and_sass(compiled)
    ptx = compiled.asm["ptx"]
    (instructions,) = sass.parse_sass(listing).values()
    loop = sass.hot_loop(instructions)
    registers, shared = usage.get("REG", 0), compiled.metadata.shared
    unit, units = (work.unit, work.units_per_iteration(config)) if work else ("iteration", 1)
    columns = max(config.get("BLOCK", 32 * num_warps) // (32 * num_warps), 1)
    facts = {
        "kernel": name,
        "dtype": dtype,
        "cc": cc,
        "registers": registers,
        "spill_bytes": usage.get("LOCAL", 0),
        "stack_bytes": usage.get("STACK", 0),
        "shared_bytes": usage.get("SHARED", 0),
        "load_width_bits": _access_width(ptx, "ld.global"),
        "store_width_bits": _access_width(ptx, "st.global"),
        "ptx_counts": ptx_counts(ptx),
        "config": config,
        "loop": loop_facts(loop, unit, units, columns),
    }
    element_bytes = 4 if dtype == "fp32" else 2
    return [
        {
            **facts,
            "size": size,
            "modeled": [
                asdict(model(loop, registers, shared, config, work, SIZES[size], element_bytes, gpu))
                for gpu in GPUS
                if gpu.cc == cc and work is not None and size is not None
            ],
        }
        for size in sizes
    ]


def _compile_groups(jobs: list[dict]) -> list[dict]:
    """Jobs gathered by what is compiled (kernel, dtype, target, config, source): each compiled once,
    modelled at every size asked of it."""
    groups: dict[str, dict] = {}
    for job in jobs:
        key = json.dumps([job["name"], job["dtype"], job["cc"], job["config"], job["source"]], sort_keys=True)
        group = groups.setdefault(
            key, {**{k: job[k] for k in ("name", "dtype", "cc", "config", "source")}, "sizes": []}
        )
        if job["size"] not in group["sizes"]:
            group["sizes"].append(job["size"])
    return list(groups.values())


def compile_facts(jobs: list[dict]) -> list[KernelFacts]:
    """Facts for many compilations. A job is a dict: name (of KERNELS), dtype, cc, and size (of
    kernels.speed.SIZES: model it there) and/or config (BLOCK, CHUNK, num_warps, ...; default: the
    one the kernel's Work declares for the size), optionally a variant with the same arguments, as
    a `kernel` object or a "path.py:function" `source`. Jobs that compile the same thing share one
    compilation.

    Distinct compilations run in child processes, one per available core: Triton compiles on one
    core, most of the time in its own passes rather than in ptxas. Under TRITON_INTERPRET=1 (the CPU
    test setup) they must run in a child anyway: `@triton.jit` made interpreted functions, and even
    Triton's own library functions are interpreted, so nothing can be lowered to PTX in this process."""
    jobs = [_job(j) for j in jobs]
    groups = _compile_groups(jobs)
    workers = min(len(groups), len(os.sched_getaffinity(0)))
    if workers <= 1 and not interpreter_enabled():
        done = [_compiled_facts(**group) for group in groups]
    else:
        batches = [groups[w::workers] for w in range(workers)]  # in turn: the costly kernels spread evenly
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(_compiled_in_child, batches))
        done = [None] * len(groups)
        for w, facts in enumerate(results):
            done[w::workers] = facts
    by_job = {}
    for group, facts in zip(groups, done, strict=True):
        for f in facts:
            by_job[_job_key(group, f["size"])] = f
    return [KernelFacts(**by_job[_job_key(j, j["size"])]) for j in jobs]


def _job_key(job: dict, size: str | None) -> str:
    return json.dumps([job["name"], job["dtype"], job["cc"], job["config"], job["source"], size], sort_keys=True)


def _compiled_in_child(groups: list[dict]) -> list[list[dict]]:
    """_compiled_facts of each group in a child process with the interpreter off."""
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "kernels.aot"], input=json.dumps(groups), capture_output=True, text=True, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(f"ahead-of-time compilation failed:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout)


def _job(job: dict) -> dict:
    """Normalise a job: its config filled in from its size, a `kernel` object turned into its
    "file:name" source."""
    job = {"config": None, "size": None, "source": None, **job}
    kernel = job.pop("kernel", None)
    if kernel is not None and job["source"] is None:
        fn = getattr(kernel, "fn", kernel)
        fn = getattr(fn, "fn", fn)  # an interpreted function wraps the Python function
        job["source"] = f"{inspect.getsourcefile(fn)}:{fn.__name__}"
    if job["config"] is None:
        work = WORK.get(job["name"])
        if work is None or job["size"] not in work.configs:
            raise ValueError(f"{job['name']}: give a config, or a size its work declares a config for")
        job["config"] = work.configs[job["size"]]
    return job


def schedule_facts(facts: list[KernelFacts]) -> list[dict]:
    """The modeled figures of each schedule (SCHEDULES, kernels.speed.in_sequence) for every dtype,
    target, size and GPU where all its launches were modelled. A launch that takes no data is
    compiled in fp32 only and stands for every dtype."""
    modelled = {(f.kernel, f.dtype, f.cc, f.size): f for f in facts if f.modeled}
    rows = []
    for dtype, cc, size in sorted({(d, cc, size) for _, d, cc, size in modelled}):
        shape, element_bytes = SIZES[size], 4 if dtype == "fp32" else 2
        for direction, schedules in SCHEDULES.items():
            walk = WORK[schedules["walk"][0]]
            floor = walk.bytes_moved(walk.configs[size], shape, element_bytes)
            for schedule, launches in schedules.items():
                parts = [modelled.get((k, dtype if takes_data(k) else "fp32", cc, size)) for k in launches]
                if None in parts:
                    continue
                for gpu in (g for g in GPUS if g.cc == cc):
                    times = [Modeled(**next(m for m in part.modeled if m["gpu"] == gpu.name)) for part in parts]
                    figures = asdict(in_sequence(times, floor, shape, gpu))
                    rows.append(dict(direction=direction, schedule=schedule, dtype=dtype, cc=cc, size=size, **figures))
    return rows


if __name__ == "__main__":  # a child process of compile_facts: groups on stdin, their facts on stdout
    print(json.dumps([_compiled_facts(**group) for group in json.load(sys.stdin)]))
