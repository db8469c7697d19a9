"""`dockyard registry serve`: an OCI distribution spec 1.1 registry on aiohttp."""
