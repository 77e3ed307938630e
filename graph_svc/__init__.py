"""graph_svc: accounts, credentials, profiles and the follow graph."""
