"""The cloud-computing lab's instrumented HTTP service, built as production software."""

# The single source of the version (pyproject.toml reads it). A literal rather than
# importlib.metadata, which would load the email and zipfile packages into every replica.
__version__ = "1.0.0"
