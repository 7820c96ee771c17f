"""`facturflow serve`: validation and conversion over HTTP for backends in any language.

    app.py      the routes (Starlette), error answers, access log
    workers.py  the bridge to the resident worker processes (BatchValidator, one per lane)
    limits.py   request body size limit and content types
    auth.py     loopback check and the bearer token
    metrics.py  counters, histogram and gauges in the Prometheus text format
    cli.py      the `serve` command: binds, serves on uvicorn, stops gracefully on SIGTERM

Starlette on uvicorn: the bodies are raw invoices (XML or PDF), not JSON request models, so a
framework that builds models (FastAPI, pydantic) would add weight without use; Starlette is the
small ASGI toolkit FastAPI itself is built on, and uvicorn the maintained ASGI server.
"""

# Nothing imported here: `facturflow serve` says which extra to install when Starlette or uvicorn
# is missing, rather than failing on import (facturflow.service.app has create_app).
