"""notification_svc: each user's activity inbox (follows, requests, likes, comments, replies, mentions),
grouped, durable, with read markers, per-type settings and real-time delivery."""
