"""Reading SASS control bits: the decoder against words decoded by hand, a fixed listing of a small
loop, and a kernel compiled here whose loads and their uses are known (a loop with a load and a
dependent use). The first two need no compiler."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kernels.sass import Loop, decode_control, hot_loop, loops, parse_sass

ROOT = Path(__file__).resolve().parents[1]

# A loop cut from `cuobjdump -sass` of h = max(x_t + 0.5 * h, 0) walked over t (sm_90, triton 3.9):
# one load per iteration, waited for by the FFMA that uses it.
LOOP_LISTING = """
\t\tFunction : walk
        /*05d0*/                   IMAD.WIDE R8, R21, 0x4, R2 ;                  /* 0x0000000415087825 */
                                                                                 /* 0x000fcc00078e0202 */
        /*05e0*/                   LDG.E R8, desc[UR4][R8.64] ;                  /* 0x0000000408087981 */
                                                                                 /* 0x000ea2000c1e1900 */
        /*05f0*/                   IADD3 R6, P0, R6, -0x1, RZ ;                  /* 0xffffffff06067810 */
                                                                                 /* 0x000fe20007f1e0ff */
        /*0600*/                   IMAD.WIDE R10, R21.reuse, 0x4, R4 ;           /* 0x00000004150a7825 */
                                                                                 /* 0x041fe200078e0204 */
        /*0610*/                   IADD3 R21, R21, R7, RZ ;                      /* 0x0000000715157210 */
                                                                                 /* 0x000fe40007ffe0ff */
        /*0620*/                   IADD3.X R0, R0, -0x1, RZ, P0, !PT ;           /* 0xffffffff00007810 */
                                                                                 /* 0x000fe400007fe4ff */
        /*0630*/                   ISETP.NE.U32.AND P0, PT, R6, RZ, PT ;         /* 0x000000ff0600720c */
                                                                                 /* 0x000fc80003f05070 */
        /*0640*/                   ISETP.NE.U32.AND.EX P0, PT, R0, RZ, PT, P0 ;  /* 0x000000ff0000720c */
                                                                                 /* 0x000fe20003f05100 */
        /*0650*/                   FFMA R19, R19, 0.5, R8 ;                      /* 0x3f00000013137823 */
                                                                                 /* 0x004fca0000000008 */
        /*0660*/                   FMNMX R19, RZ, R19, !PT ;                     /* 0x00000013ff137209 */
                                                                                 /* 0x000fca0007800000 */
        /*0670*/                   STG.E desc[UR4][R10.64], R19 ;                /* 0x000000130a007986 */
                                                                                 /* 0x0001e4000c101904 */
        /*0680*/               @P0 BRA 0x5d0 ;                                   /* 0xfffffffc00d00947 */
                                                                                 /* 0x000fea000383ffff */
        /*0690*/                   EXIT ;                                        /* 0x000000000000794d */
                                                                                 /* 0x000fea0003800000 */
        /*06a0*/                   BRA 0x6a0;                                    /* 0xfffffffc00fc7947 */
                                                                                 /* 0x000fc0000383ffff */
"""


def test_control_words_decode_as_read_by_hand():
    # LDG: upper word 0x000ea200...: bit 41 set (stall 1), bit 45 (yield), bits 46-48 = 0b010
    # (write barrier 2), bits 49-51 all ones (no read barrier), no wait.
    assert decode_control(0x000EA2000C1E1900) == (1, 1, 2, None, frozenset())
    # FFMA: stall bits 41-44 = 0b0101, wait mask bits 52-57 = 0b000100 (scoreboard 2).
    assert decode_control(0x004FCA0000000008) == (5, 0, None, None, frozenset({2}))
    # STG: read barrier 0 (its registers may be reused once read), stall 2.
    stall, _, write, read, waits = decode_control(0x0001E4000C101904)
    assert (stall, write, read, waits) == (2, None, 0, frozenset())


def test_fixed_listing_loop_load_and_its_drain():
    (instructions,) = parse_sass(LOOP_LISTING).values()
    assert len(instructions) == 14 and instructions[1].opcode == "LDG.E"
    assert instructions[11].branch_target == 0x5D0 and instructions[13].branch_target == 0x6A0
    (loop,) = loops(instructions)  # the branch to itself that pads the end is no loop
    assert (loop.start, loop.end) == (0x5D0, 0x680) and hot_loop(instructions) == loop
    assert len(loop.body) == 12 and loop.loads_by_barrier() == {2: 1}
    assert loop.mix()["global load"] == 1 and loop.mix()["float"] == 2 and loop.mix()["global store"] == 1
    stalls = [6, 1, 1, 1, 2, 2, 4, 1, 5, 5, 2, 5]
    assert [i.stall for i in loop.body] == stalls and loop.issue_cycles == sum(stalls)
    distance, load, drain = loop.drain_distance()
    assert (load.address, drain.address) == (0x5E0, 0x650)
    assert distance == sum(stalls[1:8])  # the load's own cycles up to the FFMA that waits for it
    # One drain per iteration: the schedule played forward is S + max(0, L - D).
    for latency in (0, distance, 600):
        assert loop.cycles_per_iteration(latency, 0) == loop.issue_cycles + max(0, latency - distance)
    # The FFMA reading the loaded R8 is the first use: one load in flight before it.
    assert loop.loads_before_first_use() == 1


def test_loads_in_flight_before_the_first_use():
    """A second load into R12 before the FFMA that reads R8: two in flight; after it, still one; a
    loop that never reads what it loaded has all of its loads in flight. A 128-bit load writes four
    registers: the FFMA reading R19 uses a load into R16."""
    second = (
        "        /*05f8*/                   LDG.E R12, desc[UR4][R10.64] ;                 /* 0x000000040a0c7981 */\n"
    )
    second += (
        "                                                                                 /* 0x000ea2000c1e1900 */\n"
    )

    def loop_with_second_load_after(address: str, listing: str = LOOP_LISTING):
        lines = listing.splitlines(keepends=True)
        at = {re.search(r"/\*(0[0-9a-f]{3})\*/", line).group(1): k for k, line in enumerate(lines) if "/*0" in line}
        listing = "".join(lines[: at[address] + 2] + [second] + lines[at[address] + 2 :])
        (instructions,) = parse_sass(listing).values()
        return hot_loop(instructions)

    assert loop_with_second_load_after("05e0").loads_before_first_use() == 2
    assert loop_with_second_load_after("0650").loads_before_first_use() == 1
    unread = loop_with_second_load_after("0650").body
    never_read = Loop(tuple(i for i in unread if not i.text.startswith(("FFMA", "FMNMX", "STG"))))
    assert never_read.loads_before_first_use() == 2
    wide = LOOP_LISTING.replace("LDG.E R8,", "LDG.E.128 R16,")
    assert loop_with_second_load_after("0650", wide).loads_before_first_use() == 1


def test_straight_line_code_is_one_open_pass():
    (instructions,) = parse_sass(LOOP_LISTING.replace("@P0 BRA 0x5d0", "@P0 BRA 0x690")).values()
    loop = hot_loop(instructions)
    assert not loop.closed and len(loop.body) == 14
    # Open: nothing after the end waits, so the pass costs its cycles plus the load's unhidden latency.
    distance = loop.drain_distance()[0]
    assert loop.cycles_per_iteration(500, 0) == loop.issue_cycles + 500 - distance


def listing(name: str, rows: list[tuple]) -> str:
    """A `cuobjdump -sass` listing made by hand: rows of (address, text, stall, write barrier, read
    barrier, waited barriers), the upper words encoded as the decoder reads them (checked above on
    real words); the lower words are filler."""
    lines = [f"\t\tFunction : {name}"]
    for address, text, stall, write, read, waits in rows:
        word = stall << 41 | (7 if write is None else write) << 46 | (7 if read is None else read) << 49
        word |= sum(1 << b for b in waits) << 52
        lines.append(f"        /*{address:04x}*/ {text} ; /* 0x{0:016x} */")
        lines.append(f"        /* 0x{word:016x} */")
    return "\n".join(lines)


# A loop that pipelines through shared memory (cp.async): each iteration waits until at most two
# groups are in flight, reads what landed, issues one load and closes it into a group.
CP_ASYNC_LISTING = listing(
    "pipelined",
    [
        (0x400, "DEPBAR.LE SB0, 0x2", 4, None, None, ()),
        (0x410, "LDS R6, [R35]", 1, 1, None, ()),
        (0x420, "FFMA R11, R9, 0.5, R6", 1, None, None, (1,)),
        (0x430, "LDGSTS.E [R15], desc[UR8][R10.64], !P0", 1, None, None, ()),
        (0x440, "LDGDEPBAR", 1, 0, None, ()),
        (0x450, "@P0 BRA 0x400", 5, None, None, ()),
    ],
)


def test_cp_async_groups_drain_in_order():
    """A load into shared memory closed in a group is drained by the DEPBAR that allows fewer groups
    in flight than were closed after it: here two iterations later, so it hides two iterations."""
    (instructions,) = parse_sass(CP_ASYNC_LISTING).values()
    (loop,) = loops(instructions)
    assert loop.loads_by_barrier() == {0: 1}  # LDGDEPBAR's write barrier closes the group
    distance, load, drain = loop.drain_distance()
    assert load.opcode == "LDGSTS.E" and drain.opcode == "DEPBAR.LE"
    assert distance == 3 * loop.issue_cycles - sum(i.issue_cycles for i in loop.body[:3])
    assert loop.cycles_per_iteration(distance, 0) == loop.issue_cycles  # hidden exactly
    assert loop.cycles_per_iteration(distance + 30, 0) == pytest.approx(loop.issue_cycles + 10)


COMPILE_WALK = textwrap.dedent(
    """
    import triton, triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from kernels.sass import disassemble

    @triton.jit(do_not_specialize=["T"])
    def walk(p_x, p_h, T, stride, BLOCK: tl.constexpr):
        o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        h = tl.zeros([BLOCK], tl.float32)
        for t in range(T):
            h = tl.maximum(tl.load(p_x + t * stride + o) + 0.5 * h, 0.0)
            tl.store(p_h + t * stride + o, h)

    signature = {"p_x": "*fp32", "p_h": "*fp32", "T": "i32", "stride": "i32", "BLOCK": "constexpr"}
    source = ASTSource(walk, signature, {"BLOCK": 32}, {(0,): [["tt.divisibility", 16]]})
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"num_warps": 1})
    print(disassemble(compiled.asm["cubin"]))
    """
)


@pytest.mark.slow
@pytest.mark.aot
def test_compiled_loop_waits_for_each_load_where_its_value_is_used(tmp_path):
    script = tmp_path / "walk.py"  # triton reads a kernel's source from its file
    script.write_text(COMPILE_WALK)
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    (instructions,) = parse_sass(done.stdout).values()
    loop = hot_loop(instructions)
    assert isinstance(loop, Loop) and loop.closed
    loads = [(k, i) for k, i in enumerate(loop.body) if i.kind == "global load"]
    assert loads and sum(loop.loads_by_barrier().values()) == len(loads)
    for k, load in loads:
        loaded = re.search(r"LDG\S*\s+(R\d+)", load.text).group(1)
        reads = re.compile(rf"\b{loaded}\b")
        use = next(i for i in loop.body[k + 1 :] + loop.body[:k] if reads.search(i.text.split(",", 1)[-1]))
        # The first instruction reading the loaded register waits for the load's scoreboard.
        assert load.write_barrier in use.waits, (load, use)
    distance = loop.drain_distance()[0]
    assert 0 < distance < loop.issue_cycles
