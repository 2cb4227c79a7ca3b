"""Route layer: blueprints that read requests, call one service function, return dicts."""
