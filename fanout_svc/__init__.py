"""fanout_svc: JetStream consumers that keep Redis inboxes and outboxes up to date (hybrid fan-out)."""
