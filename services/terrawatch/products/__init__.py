"""Scene products: per-hazard likelihood rasters and the scene quicklook, as Cloud-Optimized GeoTIFFs
(``cog``, ``quicklook``), served as XYZ raster tiles (``tiles``, rio-tiler) and described as STAC Items.

Layout under ``Settings.products_dir``: ``<scene id>/<hazard>_likelihood.tif`` (band 1 likelihood 0-100,
255 = excluded; band 2 exclusion flags), ``<scene id>/flood_fused.tif`` (fused S1 + S2 flood, ``fused``: band 1
likelihood, band 2 source code; when a scene of the other sensor saw the place within the fusion window) and
``<scene id>/quicklook.tif`` (uint8 display bands, 0 = no data).
"""
