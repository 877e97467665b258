"""Core: errors, options, records, the schema and the store with its repositories, migrations,
the model registry, the message catalogue, interrupts and time. Imports nothing above it."""
