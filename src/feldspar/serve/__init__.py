"""`feldspar serve`: an OpenAI-compatible HTTP API over the same Python API as the CLI.

`create_app(settings)` builds the FastAPI application; see docs/serve.md.
"""

from feldspar.serve.app import create_app

__all__ = ["create_app"]
