"""The drain benchmark's baselines: Dramatiq and Celery workers doing what Luster's worker does per job."""
