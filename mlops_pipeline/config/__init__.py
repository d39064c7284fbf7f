"""Platform settings (infrastructure, from env / .env) and team overlays (from ``teams/``)."""
