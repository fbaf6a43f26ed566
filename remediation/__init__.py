"""Enforce "no public IP" on restricted VM Scale Sets.

Floors, each importing only from those below it:
    cli, api               the command line; the HTTP endpoints' behaviour
    engine                 orchestration: event -> owning set -> reconcile -> audit; sweep, replay
    one_at_a_time          one reconcile of a set at a time across hosts (the lease's outcomes)
    observe, act           read live state through arm; carry out a plan write-ahead through audit
    plan, policy, events,  pure judgement: what is wrong and what to do; what an event, a policy,
      inventory, review      an export or a review query says (no I/O)
    arm, audit,            the only modules that talk to ARM and to storage (single_flight: a
      single_flight,         blob lease per set, one reconcile at a time across hosts); log export
      telemetry
    model, records,        data that flows between the floors; validated configuration
      settings
"""

__version__ = "0.2.0"
