"""Running core off the GUI thread: the one worker type (worker), the job specs as
dataclasses (spec, Qt-free), the job body (run), the queue (queue), and Recover on top
of the queue (recover)."""
