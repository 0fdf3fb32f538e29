"""A separate virtualenv with TensorFlow, used only by the ``tfcompat`` tests to read our TFRecords with the real
reader (``tf.data.TFRecordDataset`` + ``tf.io.parse_single_example``).

TensorFlow pins ``h5py<3.15`` and other packages that clash with the main environment, so it lives in its own
venv at ``<repo>/.venv-tf`` (git-ignored), built on first use and reused while the pins below are unchanged.
Run ``python tests/tf_env.py`` to build it ahead of time.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TF_VENV = Path(os.environ.get("ANIMEFACES_TF_VENV", REPO / ".venv-tf"))
# Exact pins: tensorflow-cpu 2.21.0 is the newest release with wheels for Python 3.11 (checked with
# `pip index versions tensorflow-cpu`); numpy is the version pip resolves next to it.
PINS = ["tensorflow-cpu==2.21.0", "numpy==2.4.6"]


def tf_python(venv: Path = TF_VENV) -> Path:
    """The venv's interpreter, building the venv first if it is missing or was built from other pins."""
    python = venv / "bin" / "python"
    stamp = venv / ".animefaces-pins"
    want = "\n".join(PINS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    base = getattr(sys, "_base_executable", None) or sys.executable
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    stamp.write_text(want)
    return python


if __name__ == "__main__":
    print(tf_python())
