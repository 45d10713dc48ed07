"""The pure domain core: scenes, tiles, masks, polygons and alert policy.

Nothing here imports Kafka, SQL or HTTP clients; adapters live at the edges.
"""
