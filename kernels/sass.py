"""Reading what the GPU will execute: the SASS of a cubin, its control bits, and its hot loop.

On Volta and later every SASS instruction is 128 bits; the upper 64-bit word carries the control
bits the compiler set for the warp scheduler:

    bits 41-44  stall: cycles the scheduler waits before issuing the warp's next instruction
    bit  45     yield (raw bit)
    bits 46-48  write barrier: the scoreboard a variable-latency instruction (a global load, say)
                signals when its result has landed (7: none)
    bits 49-51  read barrier: the scoreboard signalled once its source registers are read (7: none)
    bits 52-57  wait mask: the scoreboards that must be clear before this instruction issues

So the static schedule of a loop is in the binary: the stalls summed over its body are the cycles
one warp needs to issue an iteration (at least one per instruction: a scheduler issues one
instruction per cycle), and the distance from a load to the first instruction waiting on its
scoreboard is how much of the load's latency the loop hides. A scoreboard counts operations: a wait
on it waits for all of them, so loads sharing one are drained together. Loads into shared memory
(cp.async, LDGSTS) are closed into groups by LDGDEPBAR; groups complete in order, and DEPBAR.LE SBn,
N waits until at most N of them are in flight. `cuobjdump -sass` prints each instruction with both
64-bit words in hex; nothing here needs a GPU.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass

NO_BARRIER = 7
ISSUE_FLOOR = 1  # cycles: one instruction per cycle per scheduler, whatever the stall field says

_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.+?)\s*;\s*/\*\s*0x([0-9a-f]{16})\s*\*/")
_CONTROL = re.compile(r"^\s*/\*\s*0x([0-9a-f]{16})\s*\*/\s*$")
_FUNCTION = re.compile(r"Function\s*:\s*(\S+)")
_PREDICATE = re.compile(r"^@!?U?P[0-7T]\s+")
_REGISTER = re.compile(r"\bR(\d+)\b")


def cuobjdump() -> str:
    """The cuobjdump that ships with triton (the one matching its ptxas)."""
    import triton.backends.nvidia as nvidia

    return os.path.join(os.path.dirname(nvidia.__file__), "bin", "cuobjdump")


def disassemble(cubin: bytes, *flags: str) -> str:
    """`cuobjdump -sass` of a cubin, with any other cuobjdump flags (their output comes first)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        return subprocess.run([cuobjdump(), "-sass", *flags, path], capture_output=True, text=True, check=True).stdout


@dataclass(frozen=True)
class Instruction:
    """One SASS instruction and the control bits of its upper word."""

    address: int
    text: str  # as disassembled, predicate included: "@P0 LDG.E R14, desc[UR6][R72.64]"
    stall: int
    yield_bit: int
    write_barrier: int | None
    read_barrier: int | None
    waits: frozenset[int]

    @property
    def opcode(self) -> str:
        """The mnemonic with its modifiers, predicate dropped: "LDG.E", "IMAD.MOV.U32"."""
        return _PREDICATE.sub("", self.text).split()[0]

    @property
    def issue_cycles(self) -> int:
        return max(self.stall, ISSUE_FLOOR)

    @property
    def kind(self) -> str:
        return instruction_kind(self.opcode, self.text)

    @property
    def branch_target(self) -> int | None:
        """Where a BRA jumps (an absolute address in cuobjdump's listing), else None."""
        if self.opcode.split(".")[0] != "BRA":
            return None
        target = re.search(r"0x([0-9a-f]+)\s*$", self.text)
        return int(target.group(1), 16) if target else None

    def depbar(self) -> tuple[int, int] | None:
        """(scoreboard, count) of a DEPBAR.LE SBn, count: wait until at most `count` operations on
        the scoreboard are outstanding (the oldest complete first)."""
        match = re.match(r"DEPBAR\.LE\s+SB(\d),\s*(0x[0-9a-f]+|\d+)", _PREDICATE.sub("", self.text))
        return (int(match.group(1)), int(match.group(2), 0)) if match else None

    def drains(self, barrier: int, issued_after: int = 0) -> bool:
        """True when this instruction waits for an operation on `barrier` that `issued_after` later
        operations on the same scoreboard followed: a wait mask waits for all of them, DEPBAR.LE for
        all but the newest `count`."""
        depbar = self.depbar()
        return barrier in self.waits or (depbar is not None and depbar[0] == barrier and issued_after >= depbar[1])


def decode_control(word: int) -> tuple[int, int, int | None, int | None, frozenset[int]]:
    """(stall, yield bit, write barrier, read barrier, waited barriers) of an instruction's upper word."""
    write, read = (word >> 46) & 7, (word >> 49) & 7
    mask = (word >> 52) & 0x3F
    return (
        (word >> 41) & 0xF,
        (word >> 45) & 1,
        None if write == NO_BARRIER else write,
        None if read == NO_BARRIER else read,
        frozenset(b for b in range(6) if mask >> b & 1),
    )


def parse_sass(listing: str) -> dict[str, list[Instruction]]:
    """The instructions of each function in a `cuobjdump -sass` listing."""
    functions: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    lines = listing.splitlines()
    for i, line in enumerate(lines):
        function = _FUNCTION.search(line)
        if function:
            current = functions.setdefault(function.group(1), [])
            continue
        match = _LINE.search(line)
        if not match or current is None:
            continue
        control = _CONTROL.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not control:
            raise ValueError(f"SASS line without its control word: {line.strip()}")
        stall, yield_bit, write, read, waits = decode_control(int(control.group(1), 16))
        current.append(Instruction(int(match.group(1), 16), match.group(2), stall, yield_bit, write, read, waits))
    return functions


# Instruction kinds, for the mix of a loop. Moves are their own kind: a rotation of registers
# (a pipeline that copies values instead of naming new ones) shows up there. LDGSTS (global to
# shared memory, cp.async) is a global load whose completion its group's LDGDEPBAR signals.
GLOBAL_LOADS = ("LDG", "LD", "LDGSTS")
GLOBAL_STORES = ("STG", "ST", "RED", "ATOM", "ATOMG")
OTHER_MEMORY = ("LDC", "ULDC", "LDS", "STS", "LDL", "STL", "LDSM", "S2R", "S2UR", "CS2R", "SHFL")
CONTROL = ("BRA", "EXIT", "BSSY", "BSYNC", "BAR", "NOP", "DEPBAR", "LDGDEPBAR", "WARPSYNC", "YIELD", "CALL", "RET")
FLOAT_PREFIXES = ("F", "H", "D", "MUFU", "I2F")
KINDS = ("int", "float", "move", "global load", "global store", "other memory", "control")


def instruction_kind(opcode: str, text: str = "") -> str:
    """One of KINDS for an opcode ("IMAD.WIDE.U32" -> "int")."""
    base = opcode.split(".")[0]
    operands = _PREDICATE.sub("", text)[len(opcode) :]
    if base in ("MOV", "UMOV") or opcode.startswith("IMAD.MOV") or (base == "CS2R" and "SRZ" in operands):
        return "move"
    if opcode == "HFMA2.MMA" and re.search(r"-RZ,\s*RZ,", operands):  # the compiler's idiom for a constant
        return "move"
    if base in GLOBAL_LOADS:
        return "global load"
    if base in GLOBAL_STORES:
        return "global store"
    if base in OTHER_MEMORY:
        return "other memory"
    if base in CONTROL:
        return "control"
    if base.startswith(FLOAT_PREFIXES) and base != "F2I":
        return "float"
    return "int"


@dataclass(frozen=True)
class Loop:
    """A loop's body: instructions from the target of a backward branch up to that branch. A kernel
    without loops is one open pass over all its code (closed=False): nothing follows its end."""

    body: tuple[Instruction, ...]
    closed: bool = True

    @property
    def start(self) -> int:
        return self.body[0].address

    @property
    def end(self) -> int:
        return self.body[-1].address

    @property
    def issue_cycles(self) -> int:
        """Cycles for one warp to issue one iteration with no wait, every forward branch in it falling
        through."""
        return sum(i.issue_cycles for i in self.body)

    def mix(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for i in self.body:
            counts[i.kind] += 1
        return counts

    def _completion_barrier(self, k: int) -> int | None:
        """The scoreboard that signals when load k has landed: its own write barrier, or for LDGSTS
        that of the LDGDEPBAR closing its group."""
        load = self.body[k]
        if not load.opcode.startswith("LDGSTS"):
            return load.write_barrier
        n = len(self.body)
        for step in range(1, n if self.closed else n - k):
            later = self.body[(k + step) % n]
            if later.opcode.startswith("LDGDEPBAR"):
                return later.write_barrier
        return None

    def loads_by_barrier(self) -> dict[int, int]:
        """Global loads of one iteration, counted by the scoreboard that signals them."""
        counts: dict[int, int] = {}
        for k, i in enumerate(self.body):
            barrier = self._completion_barrier(k) if i.kind == "global load" else None
            if barrier is not None:
                counts[barrier] = counts.get(barrier, 0) + 1
        return dict(sorted(counts.items()))

    def loads_before_first_use(self) -> int:
        """Global loads (into registers) issued in one pass over the body before the first instruction
        that reads a register one of them wrote: how many loads are in flight together before the
        first wait for one (all of them when the body reads none)."""
        loaded: set[int] = set()
        issued = 0
        for ins in self.body:
            operands = _PREDICATE.sub("", ins.text)[len(ins.opcode) :]
            sources = operands if ins.kind == "global store" else operands.partition(",")[2]
            if loaded & {int(r) for r in _REGISTER.findall(sources)}:
                return issued
            if ins.opcode.split(".")[0] == "LDG":
                fields = ins.opcode.split(".")
                first = int(_REGISTER.search(operands).group(1))
                loaded |= set(range(first, first + (4 if "128" in fields else 2 if "64" in fields else 1)))
                issued += 1
        return issued

    def drain_distance(self) -> tuple[int, Instruction, Instruction] | None:
        """The load-to-drain distance D: over the global loads of the loop, the fewest issue cycles from
        a load (its own included) to the first instruction that waits for it, walking on across the
        back edge into later iterations when the wait is there. A wait for a scoreboard drains every
        load on it; DEPBAR.LE SBn, N (groups of cp.async loads, which complete in order) drains a
        group once N groups were closed after it. With the load and the instruction that drains it;
        None when the loop loads nothing or never waits for its loads."""
        n = len(self.body)
        best = None
        for k, load in enumerate(self.body):
            barrier = self._completion_barrier(k) if load.kind == "global load" else None
            if barrier is None:
                continue
            cycles, closed_after, closed = load.issue_cycles, 0, not load.opcode.startswith("LDGSTS")
            for step in range(1, MAX_LAPS * n + 1 if self.closed else n - k):
                waiter = self.body[(k + step) % n]
                if closed and waiter.drains(barrier, closed_after):
                    if best is None or cycles < best[0]:
                        best = (cycles, load, waiter)
                    break
                if waiter.write_barrier == barrier and waiter.opcode.startswith(("LDGDEPBAR", "LDG")):
                    closed_after += closed
                    closed = True
                cycles += waiter.issue_cycles
        return best

    def cycles_per_iteration(self, load_latency: int, other_latency: int) -> float:
        """Cycles one warp takes per iteration in steady state, alone on its scheduler: the schedule
        of the control bits played forward, each instruction issuing after its stall and after the
        scoreboards it waits for are clear. A global load clears its scoreboard load_latency cycles
        after issue, any other variable-latency result (constants, shared memory, special functions,
        conversions, a store releasing its registers) other_latency cycles after. An open pass is
        played once: its cycles from start to end."""
        # What the play needs of each instruction, read once: waits, DEPBAR, what it signals and when.
        schedule = [
            (
                tuple(ins.waits),
                ins.depbar(),
                ins.opcode.startswith("LDGSTS"),
                ins.opcode.startswith("LDGDEPBAR"),
                ins.write_barrier,
                load_latency if ins.kind in ("global load", "global store") else other_latency,
                ins.read_barrier,
                ins.issue_cycles,
            )
            for ins in self.body
        ]
        pending: dict[int, list[float]] = {}  # scoreboard -> when each of its operations completes
        group: list[float] = []  # cp.async loads not yet closed into a group
        now, starts = 0.0, []
        for _ in range(STEADY_LAPS if self.closed else 1):
            starts.append(now)
            for waits, depbar, cp_async, closes_group, write, latency, read, issue in schedule:
                ready = now
                for barrier in waits:
                    ready = max([ready, *pending.pop(barrier, [])])
                if depbar:
                    queue = pending.get(depbar[0], [])
                    drained = max(0, len(queue) - depbar[1])
                    ready = max([ready, *queue[:drained]])
                    pending[depbar[0]] = queue[drained:]
                if cp_async:
                    group.append(ready + load_latency)
                elif write is not None:
                    if closes_group:
                        done, group = max(group, default=ready), []
                    else:
                        done = ready + latency
                    queue = pending.setdefault(write, [])
                    queue.append(max([done, *queue[-1:]]))  # groups on one scoreboard complete in order
                if read is not None:
                    pending.setdefault(read, []).append(ready + other_latency)
                now = ready + issue
        if not self.closed:
            return now
        return (now - starts[WARMUP_LAPS]) / (STEADY_LAPS - WARMUP_LAPS)


MAX_LAPS = 64  # how far into later iterations a load's wait is looked for
# Iterations played to find the steady state, and how many of them warm up. A pipeline of several
# groups in flight settles into a cycle of a few iterations of unequal length; measuring 60 of them
# averages any such cycle of up to 6 iterations exactly.
WARMUP_LAPS, STEADY_LAPS = 60, 120


def loops(instructions: list[Instruction]) -> list[Loop]:
    """Every loop closed by a backward branch, innermost ones only (a loop holding another loop's back
    edge is left out), in code order. The branch-to-itself that pads the end of a kernel is no loop."""
    index = {i.address: k for k, i in enumerate(instructions)}
    spans = [
        (index[i.branch_target], k)
        for k, i in enumerate(instructions)
        if i.branch_target is not None and i.branch_target < i.address and i.branch_target in index
    ]
    innermost = [(a, b) for a, b in spans if not any(a <= c and d < b for c, d in spans)]
    return [Loop(tuple(instructions[a : b + 1])) for a, b in sorted(innermost)]


def hot_loop(instructions: list[Instruction]) -> Loop:
    """The innermost loop with the most issue cycles per iteration: the steady state of a kernel that
    walks time. Straight-line code is one open pass over the whole kernel."""
    return max(loops(instructions), key=lambda loop: loop.issue_cycles, default=Loop(tuple(instructions), closed=False))
