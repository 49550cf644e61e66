"""The compiled modules; everything else about the build is declared in pyproject.toml.

setuptools hands each .pyx source to Cython (a build requirement) and compiles the result.
Both are optional: where no C compiler or no Python headers are found, the build warns and
goes on, and the package runs their Python versions (example_service.workload.fibonacci for the
workload).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "example_service.workload._fibonacci",
            ["src/example_service/workload/_fibonacci.pyx"],
            optional=True,
        )
    ]
)
