//! Built-in task generators with worked reasoning traces (being written).
