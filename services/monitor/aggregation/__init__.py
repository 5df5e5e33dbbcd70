"""Job events in, rolling statistics out: the read model of jobs and workers, rebuilt from PostgreSQL at start."""
