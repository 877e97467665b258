"""Packaging that pyproject.toml cannot say: the shipped models travel inside the package.

The models stay in the top-level models/ folder of the source tree (the registry, the landmarker
bundle with its licence, every ONNX model with its card) and are mapped into the wheel as the data
package `engagement.models`, so `pip install .`, a wheel copied to each Ray worker machine or a
published release carries them; engagement/core/config.py finds them through importlib.resources.
pyproject.toml's package finder cannot add a package whose folder lies elsewhere, hence this file.
Everything else (metadata, dependencies, package data) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["engagement*", "privacy*", "dashboard*"]) + ["engagement.models"],
    package_dir={"engagement.models": "models"},
)
