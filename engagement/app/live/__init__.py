"""Live sessions (`engagement live`): the loop in `session`, the capture thread in `capture`, its
rate in `rate`, the status line in `status` and the store's latency in `latency`."""
