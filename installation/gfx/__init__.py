"""GL plumbing: context creation and shader loading (engine thread only)."""
