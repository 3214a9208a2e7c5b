"""Spinal regions as docs/coding-rules.md section 1 defines them.

The region is what the 5th/6th character of the region-coded families names
(notecoder.codes finds that character by the region's words in the tabular
descriptions), so the level normaliser, the linker and the coder all speak in
these names, in anatomical order from the skull down.
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

#: Human phrase for messages and queries ("no imaging finding is documented for the lumbar region").
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
