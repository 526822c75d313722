"""Public test kit: FakeClock, frame builders, SwitchHarness (memory devices), and netns helpers."""
