"""The compiled workload; everything else about the build is declared in pyproject.toml.

setuptools hands a .pyx source to Cython (a build requirement) and compiles the result. The
extension is optional: where no C compiler or no Python headers are found, the build warns
and goes on, and the package runs the same recursion in Python (example_service.fibonacci).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "example_service._fibonacci", ["src/example_service/_fibonacci.pyx"], optional=True
        )
    ]
)
