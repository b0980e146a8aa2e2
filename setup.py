"""Package discovery only (everything else is in pyproject.toml): the repository's ``weights/`` folder goes into
the wheel as the package ``dubber_weights``, so that a plain ``pip install .`` dubs offline."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["dubber", "dubber.*"]), "dubber_weights"],
    package_dir={"dubber_weights": "weights"},
)
