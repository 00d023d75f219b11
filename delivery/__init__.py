"""Delivery of the hub's outbox: SMTP for e-mail, a printable PDF for the post, and
Slack (dagster-slack) for the ops staff's alerts and digest when configured.

The hub renders and queues letters (hub.letters, hub.alerts, hub.outbox) and stays
free of network code (DESIGN.md: hub/ has no SMTP). This package is the one place that
talks to a mail server or Slack; the `letter_outbox` sensor (pipelines/sensors.py) and `hub
letters send` both call `delivery.worker.tick`, so cron-less setups and Dagster
deliver the same way. Arrows: pipelines → delivery → hub; hub/cli.py on top.
"""
