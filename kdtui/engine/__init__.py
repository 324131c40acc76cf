"""The training engine: emits typed events (:mod:`kdtui.engine.events`) and knows no UI."""
