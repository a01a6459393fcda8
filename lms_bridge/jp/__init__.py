"""JP: the rules kept as data and the engine that turns evidence into JP records."""
