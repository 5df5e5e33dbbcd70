"""The monitoring service: a restartable read model of jobs, workers and queues, with alerts and a dashboard."""
