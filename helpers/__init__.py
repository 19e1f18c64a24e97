"""CIFAR Lab's shared helper package.

Every notebook of the series imports from here: data loading (`helpers.data`),
the input pipeline (`helpers.pipeline`), model builders (`helpers.models`),
learning-rate schedules (`helpers.schedules`), the experiment engine
(`helpers.engine`), plots (`helpers.plots`) and the run profiles
(`helpers.profiles`). Importing the package itself is cheap: TensorFlow and
Keras are imported only by the modules that need them.

Importing it also sets two of TensorFlow's environment variables for the
process, each only when the user has not set it. Both are read when
TensorFlow is first imported, so import ``helpers`` before ``tensorflow``;
the notebooks and the command line do.

* ``TF_ENABLE_ONEDNN_OPTS=1``: TensorFlow 2.21 left its oneDNN kernels off
  on the project's AMD EPYC (AVX2) machines, and its convolutions then ran
  as Eigen contractions at about half the speed (benchmarks/README.md).
  `helpers.environment.onednn_state` says what a process actually got, and
  every run record stores it.
* ``TF_CPP_MIN_LOG_LEVEL``: TensorFlow's C++ start-up lines ("failed call to
  cuInit: CUDA error" on every machine without a GPU, oneDNN and CPU
  feature notices) would otherwise come before anything useful a command or
  a notebook prints. Level 3 (fatal only) where no NVIDIA driver is visible,
  since there the CUDA errors are all noise; level 2 (errors kept) where one
  is, since there a CUDA error can be the reason a run is slow.
"""

import os as _os
import sys as _sys

from helpers import config as _config

__version__ = "0.1.0"

if "tensorflow" not in _sys.modules:
    _os.environ.setdefault(_config.ONEDNN_ENV, "1")
    _os.environ.setdefault(_config.TF_LOG_LEVEL_ENV,
                           "2" if _os.path.exists("/proc/driver/nvidia/version") else "3")
