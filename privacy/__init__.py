"""Privacy by design: consent gating, pseudonyms, retention and purge, tamper-evident audit."""
