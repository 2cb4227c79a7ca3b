"""Which third-party modules the check loaded, against what the GPU machine's python3 holds.

The lent GPU machine has no network and cannot receive the project's venv: what the check
imports must be in its image (docs/benchmarks.md names the list's source) or travel with the
repository as a pure-Python wheel (`scripts/gpu_checks/wheels/`, pinned as in the
containers' requirements). Run under the venv, this row catches a new import of the trainer or
the inference server that the GPU machine would not have.
"""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.gpu_checks.common import FAIL, OK, Row

# Import names of the packages the GPU machine's python3 holds (its image, 'cuda': torch 2.11,
# torchvision 0.26, timm, torchmetrics, pillow, psutil, nvidia-ml-py, numpy, safetensors,
# opencv-python-headless, matplotlib and their dependencies).
DEVICE_IMAGE = frozenset(
    """
    torch torchgen torchvision timm torchmetrics lightning_utilities PIL psutil pynvml numpy safetensors cv2
    matplotlib contourpy cycler fontTools kiwisolver pyparsing dateutil six packaging
    sympy mpmath networkx jinja2 markupsafe filelock fsspec typing_extensions triton
    huggingface_hub hf_xet yaml tqdm requests urllib3 certifi idna charset_normalizer
    cython_runtime setuptools pkg_resources _distutils_hack nvidia cuda google optree opt_einsum scipy
    """.split()
)
PROJECT = frozenset({"trainer", "inference", "contracts", "scripts"})
BUNDLED = frozenset({"defusedxml", "waitress"})  # scripts/gpu_checks/wheels


def outside(modules=None) -> list[str]:
    """Top-level third-party modules loaded that neither the image nor the wheels provide."""
    modules = sys.modules if modules is None else modules
    names = {name.split(".")[0] for name in modules}
    third_party = names - set(sys.stdlib_module_names) - set(sys.builtin_module_names) - PROJECT
    return sorted(n for n in third_party if not n.startswith("_") and n not in DEVICE_IMAGE | BUNDLED)


def run(wheels_used: list[str], on_gpu_machine: bool) -> Row:
    """FAIL only off the GPU machine: there, what loaded is evidently installed, and a name
    outside the list above means the list is short, which the note says."""
    extra = outside()
    used = ", ".join(Path(w).name for w in wheels_used) or "none needed"
    if not extra:
        return Row("imports", OK, "none outside the image", "none outside", f"wheels: {used}")
    if on_gpu_machine:
        return Row(
            "imports", OK, "-", "none outside", f"installed here, not in DEVICE_IMAGE: {', '.join(extra)}"
        )
    return Row("imports", FAIL, ", ".join(extra), "none outside", f"wheels: {used}")
