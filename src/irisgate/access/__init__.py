"""Who may do what, and where a model name leads: grants matched to a caller (`grants`) and
the route from a requested model to a provider among those granted (`routing`)."""
