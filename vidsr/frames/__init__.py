"""The path a frame takes through vidsr, from the reader to the writer, in one folder.

- ``pipeline``: the threads and the bounded queues between them: ``video.reader`` decodes, the super-resolve
  thread runs the stages below, ``video.writer`` encodes and muxes. A failure anywhere cancels all of them.
- ``stages``: a decoded frame to the network's tensor and back (the Y path for VDSR/SRCNN, the RGB path for
  EDSR/MDSR/RVSR), on the CPU; ``device_stages`` does the same on a CUDA device, overlapped on three streams.
- ``upscaler``: one engine's runtime call: bicubic pre-upscale for HR-space models, tiles of large frames.
- ``recurrence``: the state a multi-frame engine carries from frame to frame, its alignment, and where it starts
  afresh (the first frame, a scene cut, a hole, a new size).
- ``motion_filter``: the optional temporal filter on the output (``--temporal-filter``).
- ``image``: still images, which take the upscaler without the video threads.
- ``clock`` times each stage (``--json``'s ``bound_by``); ``bench`` runs the pipeline on a synthetic clip.
"""
