"""Enforce "no public IP" on restricted VM Scale Sets.

Floors, each importing only from those below it:
    cli, api               the command line; the HTTP endpoints' behaviour
    engine                 orchestration: event -> owning set -> reconcile -> audit; sweep, replay
    observe, act           read live state through arm; carry out a plan write-ahead through audit
    coalesce               one reconcile in flight per set, plus one follow-up
    plan, policy, events,  pure judgement: what is wrong and what to do; what an event, a policy,
      inventory, review      an export or a review query says (no I/O)
    arm, audit, telemetry  the only modules that talk to ARM and to storage; log export
    model, records,        data that flows between the floors; validated configuration
      settings
"""

__version__ = "0.1.0"
