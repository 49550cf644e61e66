"""The lab's Fibonacci workload: fib compiled and in Python, the worker threads, and the
admission that decides where each computation runs."""
