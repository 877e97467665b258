"""SQL writes, one module per aggregate; callers keep the policy (what to write, when)."""
