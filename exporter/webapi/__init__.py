"""JSON summaries, the live WebSocket feed and the status page, all backed by Prometheus."""
