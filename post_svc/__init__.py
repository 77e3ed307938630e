"""post_svc: posts (caption, hashtags, location, media references), the profile grid, post events."""
