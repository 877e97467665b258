"""Every INSERT, UPDATE and DELETE of the database, one module per aggregate.

Callers above the core (privacy, the dashboard, the application) decide what to write and when;
these functions are the only code that writes, each on the caller's connection so that one
transaction can hold several steps (a purge, its receipt and its audit entry commit together).
Sessions and runs: `runs` (its steps that are a transaction of their own take the store).
"""
