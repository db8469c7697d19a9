"""The Docker Engine API server of dockyardd: aiohttp application (server.py), API versions
(versions.py), Docker's error shape (errors.py), request/response streaming between the event
loop and worker threads (streams.py) and the routes (routes/)."""
