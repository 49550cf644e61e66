"""`example-service load`: bounded HTTP load against the lab's replicas.

Nothing here is imported by the server: the HTTP parser (httptools) and rich are loaded
only when the `load` subcommand runs, so a replica's memory does not pay for the load
generator.
"""
