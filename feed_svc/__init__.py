"""feed_svc: the home feed read path (Redis inbox + celebrity outboxes, hydrated in batch)."""
