"""The ground station's web back end: HTTP + WebSocket API (aiohttp) and the console files."""
