"""story_svc: 24-hour stories, the tray of accounts with active stories, and who viewed each story."""
