"""Admin access: the HTTP Basic login and its throttling, and the sessions whose CSRF tokens guard every POST."""
