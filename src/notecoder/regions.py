"""Spinal regions as coding-rules.md section 1 defines them.

The region is what the 5th/6th character of the region-coded families names, so
both the level normaliser and the coder speak in these names. The order is the
anatomical order from the skull down; it is also the order codes are listed in.
"""

from __future__ import annotations

#: Region names in anatomical order. ``multiple`` is only a coding outcome.
REGIONS: tuple[str, ...] = (
    "occipito-atlanto-axial",
    "cervical",
    "cervicothoracic",
    "thoracic",
    "thoracolumbar",
    "lumbar",
    "lumbosacral",
    "sacral",
)

#: The site character of coding-rules.md section 1 for each region.
SITE_CHAR: dict[str | None, str] = {
    None: "0",
    "occipito-atlanto-axial": "1",
    "cervical": "2",
    "cervicothoracic": "3",
    "thoracic": "4",
    "thoracolumbar": "5",
    "lumbar": "6",
    "lumbosacral": "7",
    "sacral": "8",
    "multiple": "9",
}

#: Human phrase for messages ("No imaging finding documented for the lumbar region.").
REGION_PHRASE: dict[str | None, str] = {
    None: "an unspecified site",
    "occipito-atlanto-axial": "the occipito-atlanto-axial region",
    "cervical": "the cervical region",
    "cervicothoracic": "the cervicothoracic region",
    "thoracic": "the thoracic region",
    "thoracolumbar": "the thoracolumbar region",
    "lumbar": "the lumbar region",
    "lumbosacral": "the lumbosacral region",
    "sacral": "the sacral and sacrococcygeal region",
    "multiple": "multiple sites in the spine",
}
