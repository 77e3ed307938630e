"""engagement_svc: likes, comments with one level of replies, saved posts, and their exact counts."""
