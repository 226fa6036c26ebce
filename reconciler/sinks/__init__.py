"""Status sinks: where run events and task state are reported (metrics, Kubernetes status)."""
