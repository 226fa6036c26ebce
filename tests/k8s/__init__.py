"""Kubernetes API emulator and its contract tests (see ``tests/k8s/emulator``)."""
