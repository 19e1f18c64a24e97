"""CIFAR Lab's shared helper package.

Every notebook of the series imports from here: data loading (`helpers.data`),
the input pipeline (`helpers.pipeline`), model builders (`helpers.models`),
learning-rate schedules (`helpers.schedules`), the experiment engine
(`helpers.engine`), plots (`helpers.plots`) and the run profiles
(`helpers.profiles`). Importing the package itself is cheap: TensorFlow and
Keras are imported only by the modules that need them.

Importing it also turns on TensorFlow's oneDNN kernels for the process
(``TF_ENABLE_ONEDNN_OPTS=1``) unless the environment already says otherwise.
TensorFlow 2.21 left them off on the project's AMD EPYC (AVX2) machines, and
its convolutions then ran as Eigen contractions at about half the speed
(benchmarks/README.md). The variable is read when TensorFlow is first
imported, so import ``helpers`` before ``tensorflow``; the notebooks do.
`helpers.environment.onednn_state` says what a process actually got, and
every run record stores it.
"""

import os as _os
import sys as _sys

__version__ = "0.1.0"

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
if ONEDNN_VARIABLE not in _os.environ and "tensorflow" not in _sys.modules:
    _os.environ[ONEDNN_VARIABLE] = "1"
