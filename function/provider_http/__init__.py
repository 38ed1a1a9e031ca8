"""provider_http."""
