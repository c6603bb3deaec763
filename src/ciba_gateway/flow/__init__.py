"""The flow engine: auth requests, their transitions, the background driver."""
