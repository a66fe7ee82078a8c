"""One-off experiment analyses behind docs/MODEL.md (see experiments/README.md); run each as
`python -m experiments.<name>` from the repository root."""
