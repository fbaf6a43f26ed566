"""Enforce "no public IP" on restricted VM Scale Sets.

Floors, each importing only from those below it:
    cli, engine            orchestration: events -> reconcile -> audit; the command line
    observe, act           read live state through arm; carry out a plan write-ahead through audit
    plan, policy, events   pure judgement: what is wrong and what to do (no I/O)
    arm, audit             the only modules that talk to ARM and to storage
    model, settings        data that flows between the floors; validated configuration
"""

__version__ = "0.1.0"
