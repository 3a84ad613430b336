"""Build lgc's unchanged CUDA sources (``cuda/*.cu``) for the host, on the CPU emulation of the
CUDA execution model in ``cuda_runtime.h`` beside this file (read its header comment for what is
modelled and checked).

One source transform makes a ``.cu`` file plain C++: every launch ``kernel<<<grid, block, shmem,
stream>>>(args)`` becomes ``::lgc_emu::Launch(grid, block, shmem, stream).run("kernel", kernel,
args)``. The result is compiled by g++ into a shared library (cached by content hash, like every
lgc build) that exports the ``.cu`` file's own ``extern "C"`` API plus the emulator's controls, so
the real Python bindings (``lgc.backends.cuda.CudaNet``, the training kernels' autograd glue) run
on it unchanged.

Usage::

    emu = cuda_emu.load("runtime.cu")          # an Emulator; emu.lib is the ctypes library
    emu.configure(order="shuffled", seed=3, cap=(0, 2, 0), garbage=-1)
    ... call emu.lib ...
    emu.check()                                 # raises EmulationViolation listing what went wrong

Cost: a g++ build of a few seconds per source (once per content), then a few microseconds per
emulated thread.
"""
from __future__ import annotations

import ctypes
import functools
import pathlib
import re

from lgc._build import CUDA_HEADERS, BuildError, build_shared_library, cuda_source, find_tool

HERE = pathlib.Path(__file__).resolve().parent
ORDERS = {"forward": 0, "reverse": 1, "shuffled": 2}
FLAGS = ["-O1", "-g0", "-std=c++17", "-shared", "-fPIC", "-I.", "-Wno-attributes"]


class EmulationViolation(AssertionError):
    """A kernel broke a rule of the CUDA execution model while running under the emulator."""


def _match(text: str, start: int, open_: str, close: str) -> int:
    """Index of the bracket closing the one at ``start``."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {open_}{close} from offset {start}")


def _kernel_name_start(text: str, end: int) -> int:
    """Start of the kernel expression (``name``, ``ns::name``, ``name<T, 2>``) ending at ``end``."""
    i = end
    while i > 0 and text[i - 1].isspace():
        i -= 1
    if text[i - 1] == ">":  # template arguments: walk back to the matching '<'
        depth = 0
        while i > 0:
            i -= 1
            depth += text[i] == ">"
            depth -= text[i] == "<"
            if depth == 0:
                break
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    return i


def transform(source: str) -> str:
    """``source`` with every ``<<<...>>>`` launch rewritten as a call into the emulator."""
    out, pos = [], 0
    for m in re.finditer(r"<<<", source):
        if m.start() < pos:
            continue
        start = _kernel_name_start(source, m.start())
        name = source[start:m.start()].strip()
        close = source.index(">>>", m.end())
        config = source[m.end():close]
        paren = source.index("(", close + 3)
        if source[close + 3:paren].strip():
            raise ValueError(f"unexpected text between >>> and ( after {name}")
        end = _match(source, paren, "(", ")")
        args = source[paren + 1:end]
        call = f'::lgc_emu::Launch({config}).run("{name}", {name}' + (f", {args})" if args.strip() else ")")
        out += [source[pos:start], call]
        pos = end + 1
    out.append(source[pos:])
    return "".join(out)


class Emulator:
    """A ``.cu`` file built on the emulator: ``lib`` (ctypes) plus the emulator's controls."""

    def __init__(self, lib: ctypes.CDLL, name: str):
        self.lib, self.name = lib, name
        lib.lgc_emu_configure.argtypes = [ctypes.c_int, ctypes.c_uint64, ctypes.c_uint, ctypes.c_uint,
                                          ctypes.c_uint, ctypes.c_int, ctypes.c_int]
        lib.lgc_emu_configure.restype = None
        lib.lgc_emu_violations.restype = ctypes.c_char_p
        lib.lgc_emu_clear.restype = None
        lib.lgc_emu_counters.argtypes = [ctypes.POINTER(ctypes.c_int64)]
        lib.lgc_emu_counters.restype = None
        lib.lgc_emu_live_allocations.restype = ctypes.c_int64
        lib.lgc_emu_set_execute.argtypes = [ctypes.c_int]
        lib.lgc_emu_set_execute.restype = None
        self.configure()

    def configure(self, order: str = "forward", seed: int = 1, cap: tuple[int, int, int] = (0, 0, 0),
                  garbage: int = 0xA5, devices: int = 1, execute: bool = True) -> None:
        """Block/thread ``order`` ('forward', 'reverse', 'shuffled' by ``seed``); ``cap`` grid
        dimensions (0 = none) so grid-stride loops run with few blocks; ``garbage`` fill byte of
        new device memory (-1: random bytes); ``devices`` the device count; ``execute`` False
        checks and counts launches without running them. Clears violations and counters."""
        self.lib.lgc_emu_configure(ORDERS[order], seed, *cap, garbage, devices)
        self.lib.lgc_emu_set_execute(int(execute))
        self.lib.lgc_emu_clear()

    def violations(self) -> str:
        return self.lib.lgc_emu_violations().decode()

    def check(self) -> None:
        """Raise EmulationViolation when any rule was broken since the last configure/check."""
        v = self.violations()
        self.lib.lgc_emu_clear()
        if v:
            raise EmulationViolation(f"{self.name} under emulation:\n{v}")

    def counters(self) -> dict[str, int]:
        """Launches, blocks and threads run since the last configure/check."""
        out = (ctypes.c_int64 * 3)()
        self.lib.lgc_emu_counters(out)
        return {"launches": out[0], "blocks": out[1], "threads": out[2]}

    def live_allocations(self) -> int:
        return int(self.lib.lgc_emu_live_allocations())


def compiler() -> str | None:
    return find_tool("g++", "LGC_CXX") or find_tool("c++")


@functools.lru_cache(maxsize=None)
def load(source_name: str, source: str | None = None) -> Emulator:
    """Build (cached by content) and load ``cuda/<source_name>`` on the emulator. ``source``
    overrides the file's text (tests plant faults this way). Raises BuildError."""
    cxx = compiler()
    if cxx is None:
        raise BuildError("no C++ compiler (g++) for the CUDA emulator; set LGC_CXX")
    text = transform(cuda_source(source_name) if source is None else source)
    shim = (HERE / "cuda_runtime.h").read_text()
    cpp = source_name.rsplit(".", 1)[0] + ".cpp"
    headers = {h: cuda_source(h) for h in CUDA_HEADERS}
    path = build_shared_library({cpp: text, "cuda_runtime.h": shim, **headers}, cxx, FLAGS, kind="cuda-emu")
    return Emulator(ctypes.CDLL(str(path)), source_name)
