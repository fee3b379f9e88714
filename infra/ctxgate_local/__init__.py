"""The local runtime behind ``ctxgate local``: moto's server, resources built from template.yaml, and the
Lambda handlers served in-process behind an emulated API Gateway HTTP API. Development only; not deployed."""
