"""HTTP routes by resource, mirroring the URL tree: one Powertools ``Router`` per resource, each thin (parse the
request, call a service from :mod:`ctxgate.bootstrap`, render the response)."""
