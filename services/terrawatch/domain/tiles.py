"""Tiling a scene into overlapping windows and stitching by centre crop.

Pixel coordinates: (row, col) in the scene's raster grid. A tile reads a
``size x size`` window that may extend past the raster edge (filled as nodata);
only its centre ``core`` (size - 2*overlap) is kept, so every scene pixel is
written by exactly one tile and predictions never come from a tile border.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

# Exclusion bit flags of a pixel that was not classified (stored with every product, GFM-style):
EXCLUDED_NODATA = 1  # an input band has no data there
EXCLUDED_CLOUD = 2  # optical: cloud or cloud shadow (the model gave no estimate)
EXCLUDED_RADAR = 4  # SAR: radar shadow or layover
EXCLUDED_AOA = 8  # outside the model's area of applicability (not inferred; domain/aoa.py)


@dataclass(frozen=True)
class Tile:
    index: int
    row: int
    col: int
    read_row: int  # top-left of the read window in scene pixels (may be negative)
    read_col: int
    size: int
    core_row: int  # top-left of the kept core in scene pixels
    core_col: int
    core_h: int
    core_w: int

    @property
    def core_offset(self) -> tuple[int, int]:
        """(row, col) of the kept core inside the tile array."""
        return self.core_row - self.read_row, self.core_col - self.read_col


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    size: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError("raster must have positive dimensions")
        if self.size <= 2 * self.overlap:
            raise ValueError("tile size must exceed twice the overlap")

    @property
    def core(self) -> int:
        return self.size - 2 * self.overlap

    @property
    def shape(self) -> tuple[int, int]:
        return ceil(self.height / self.core), ceil(self.width / self.core)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def __iter__(self):
        rows, cols = self.shape
        c = self.core
        for r in range(rows):
            for q in range(cols):
                core_row, core_col = r * c, q * c
                yield Tile(
                    index=r * cols + q, row=r, col=q,
                    read_row=core_row - self.overlap, read_col=core_col - self.overlap, size=self.size,
                    core_row=core_row, core_col=core_col,
                    core_h=min(c, self.height - core_row), core_w=min(c, self.width - core_col),
                )


def crop_core(tile: Tile, array):
    """Return the core of a tile-sized array (..., size, size)."""
    r, c = tile.core_offset
    return array[..., r : r + tile.core_h, c : c + tile.core_w]
