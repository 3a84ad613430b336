"""Drop-in replacements for other libraries' inference APIs, built on :func:`lgc.compile`.

- :mod:`lgc.compat.difflogic` — ``CompiledLogicNet`` (difflogic's compiled-model names).
"""
