"""CIFAR Lab's shared helper package.

Every notebook of the series imports from here: data loading (`helpers.data`),
the input pipeline (`helpers.pipeline`), model builders (`helpers.models`),
learning-rate schedules (`helpers.schedules`), the experiment engine
(`helpers.engine`), plots (`helpers.plots`) and the run profiles
(`helpers.profiles`). Importing the package itself is cheap: TensorFlow and
Keras are imported only by the modules that need them.
"""

__version__ = "0.1.0"
