"""Turn orchestration: plan the context, consult the response cache, call the model, store the turn."""
