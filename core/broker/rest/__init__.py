"""The broker's REST API (aiohttp), served beside the Kafka listener with `--http HOST:PORT`."""
