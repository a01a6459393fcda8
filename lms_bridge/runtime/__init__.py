"""Runtime: the scheduler, distributed syncs on Celery, metrics and logs."""
