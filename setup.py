"""Package metadata for kerascnn."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="kerascnn",
    version="0.1.0",
    description=(
        "Best practices for training convolutional networks as Keras 3 / "
        "TensorFlow building blocks and workflows: GroupNorm, max-norm, "
        "DropConnect, cyclical learning rates, transfer learning by the "
        "similarity/size table, KerasTuner search, verified SavedModel export."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["kerascnn", "kerascnn.*"]),
    package_data={"kerascnn.datasets": ["data/*.npz"]},
    include_package_data=True,
    # Lower bounds are the versions CI installs and the test suite runs on
    # (older ones were never tested); the upper bounds stop at the first
    # untested minor of the packages whose internals kerascnn._compat uses.
    install_requires=[
        "tensorflow>=2.21.0,<2.22",
        "keras>=3.15.1,<4",
        "keras-tuner>=1.4.8,<1.5",
        # KerasTuner imports tensorboard in every trial under the TF backend.
        "tensorboard>=2.21.0",
        "scikit-learn>=1.9.1",
        # The linear probe runs its many small solver calls on one BLAS thread.
        "threadpoolctl>=3.8.0",
        "numpy>=2.4.6",
        "matplotlib>=3.11.2",
        "pillow>=13.0.0",
    ],
    extras_require={
        "test": ["pytest>=9.0.3", "pytest-timeout>=2.4.0", "pytest-xdist>=3.8.0"],
    },
    entry_points={"console_scripts": ["kerascnn=kerascnn.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
