"""Scene products: per-hazard likelihood rasters and the scene quicklook, as Cloud-Optimized GeoTIFFs
(``cog``, ``quicklook``), served as XYZ raster tiles (``tiles``, rio-tiler) and described as STAC Items.

Layout under ``Settings.products_dir``: ``<scene id>/<hazard>_likelihood.tif`` (band 1 likelihood 0-100,
255 = excluded; band 2 exclusion flags) and ``<scene id>/quicklook.tif`` (uint8 display bands, 0 = no data).
"""
