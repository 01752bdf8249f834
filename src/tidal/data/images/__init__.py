"""tidal.data.images: images as tables (needs Pillow: ``pip install 'tidal[images]'``).

A table of images has an ``image`` column of PNG bytes, beside its label and a ``path`` column; at collection
every image is decoded, checked by ``data.checks.images`` and stored as canonical PNG, so a snapshot's digest
covers the pixels and the labels (``codec``). ``collect`` reads the three layouts (class folders, a labels file,
a Parquet column of bytes), ``profile`` describes them for a person (counts per class, sizes, channel
statistics, a contact sheet), ``checks`` compares classes with the reference, and ``prepare`` is the
scikit-learn transformer that turns them into float32 arrays for a model. docs/images.md has the why.
"""
