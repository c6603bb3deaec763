"""The minimal example connector of connectors/README.md."""
