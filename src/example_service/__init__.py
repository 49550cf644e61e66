"""The cloud-computing lab's instrumented HTTP service, built as production software."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("example-service")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
