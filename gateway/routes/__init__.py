"""HTTP routes, one router per area of the public API."""
