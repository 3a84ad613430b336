"""CUDA sources (torch-free kernels), installed as the data package ``lgc._cuda``.

Find them with ``importlib.resources.files("lgc._cuda")``; they are built on first use by nvcc.
"""
