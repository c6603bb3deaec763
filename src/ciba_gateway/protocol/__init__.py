"""Framework-free OAuth / CIBA protocol logic."""
