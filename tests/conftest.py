"""Shared test set-up: hypothesis profiles, the LGC_REQUIRE rule and data locations."""
from __future__ import annotations

import os
import pathlib

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", deadline=None, max_examples=100, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None, max_examples=25,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", deadline=None, max_examples=500,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

REPO = pathlib.Path(__file__).resolve().parent.parent


def required() -> set[str]:
    return {r.strip() for r in os.environ.get("LGC_REQUIRE", "").split(",") if r.strip()}


def need(feature: str, why_missing: str | None) -> None:
    """Skip the test when ``why_missing`` is set, or fail it when LGC_REQUIRE names ``feature``.

    Features: cpu-kernel, c-compiler, llvm, nvcc, cuda-emu, gpu, eda, sat, mnist, cross (qemu-user, cross gcc,
    wasm-ld, node)."""
    if why_missing is None:
        return
    if feature in required():
        pytest.fail(f"LGC_REQUIRE names {feature!r} but it is missing: {why_missing}", pytrace=False)
    pytest.skip(f"{feature} unavailable: {why_missing}")


def need_target(target: str) -> None:
    """Skip (or fail under LGC_REQUIRE) when the executable ``target`` cannot run on this host:
    ``llvm`` needs llvmlite, ``cuda`` a GPU, the C targets a compiler (and the CPU's vector
    extensions, a plain skip); ``numpy`` always runs."""
    if target == "numpy":
        return
    from lgc.backends import cpu_c, cuda, llvm
    if target == "llvm":
        need("llvm", llvm.available())
        return
    if target == "cuda":
        need("gpu", cuda.available())
        return
    why = cpu_c.available(target)
    if why is not None and ("compiler" in why or "cffi" in why):
        need("c-compiler", why)
    if why is not None:
        pytest.skip(f"{target}: {why}")


@pytest.fixture
def one_torch_thread():
    """torch at one thread for the test: hundreds of tiny kernel calls only pay for thread hand-offs
    on a shared 2-core host (minutes)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def data_dir() -> pathlib.Path:
    env = os.environ.get("LGC_DATA_DIR")
    return pathlib.Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture
def mnist_dir() -> pathlib.Path:
    d = data_dir() / "mnist"
    need("mnist", None if (d / "train-images-idx3-ubyte.gz").exists() else f"no MNIST files in {d}")
    return d
