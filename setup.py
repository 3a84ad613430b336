"""Packaging that pyproject.toml cannot express alone: the top-level ``cuda/`` sources ship inside
the wheel as the data package ``lgc._cuda``, and CPU C/C++ sources ship beside their modules."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["lgc", "lgc.*"]) + ["lgc._cuda"],
    package_dir={"lgc._cuda": "cuda"},
    package_data={
        "lgc": ["**/*.c", "**/*.cpp", "**/*.h", "**/*.hpp", "passes/data/*.txt"],
        "lgc._cuda": ["*.cu", "*.cuh", "*.h"],
    },
    include_package_data=False,
)
