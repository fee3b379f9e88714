"""Wire formats of the HTTP APIs ctxgate serves: request validation and response rendering."""
