"""Process entry points: the composition roots that build the services and hand them on."""
