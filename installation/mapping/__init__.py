"""LED mapping by camera: ``python run.py map``.

The venue's own LED pipeline (flash and power limits included) shows Gray-coded
LED indices with their inverses; a camera watches; every LED is found in the
camera image, mapped to the canvas through a lens-corrected homography, and the
positions are written back into the venue's layouts.  See docs/mapping.md.

Rooms: ``patterns`` (what is shown), ``drive`` (showing it safely through the
venue's pipeline), ``sources`` (camera frames: a device or a recorded clip),
``decode`` (camera frames -> LEDs in the image), ``geometry`` (lens distortion,
homography, ROI), ``fit`` (per-fixture refit, reversed strips, colour order),
``write`` (layouts, the views file, the venue's camera section), ``overlay``
(PNGs for the installer) and ``cli`` (the command).
"""
