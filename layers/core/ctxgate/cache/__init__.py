"""Response caching: an exact cache and a semantic cache, both scoped to the tenant."""
