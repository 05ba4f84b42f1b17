"""API: the routers under /v1, one module per resource."""
