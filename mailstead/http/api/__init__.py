"""The admin API: every administrative operation of the command line over HTTP (``/api``).

Routes are thin: they validate the request (pydantic, through FastAPI, which also writes
the OpenAPI document at ``/api/openapi.json``), name the caller, call
:class:`mailstead.admin.service.Admin` and shape its answer.
"""
