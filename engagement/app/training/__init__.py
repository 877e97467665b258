"""Training code (needs torch, an optional extra); the runtime never imports this package."""
