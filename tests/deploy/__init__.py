"""Deployment artefacts: the CRD, the manifests in deploy/ and the Dockerfile."""
