"""Configuration: the model (frozen Structs) and the strict YAML loader."""
