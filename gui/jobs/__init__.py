"""Running core off the GUI thread: the one worker type (worker) and the job
specs, job bodies and queue (queue)."""
