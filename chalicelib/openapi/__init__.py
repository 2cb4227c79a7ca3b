"""The OpenAPI 3.1 document of both APIs, built from the registered routes and the contracts
tables (`document.build(app)`), served at `GET /openapi.json` and written to docs/openapi.json
by `make openapi` (`python -m chalicelib.openapi docs/openapi.json`)."""
