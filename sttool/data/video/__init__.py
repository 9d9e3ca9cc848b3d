"""Video reading: backends (decord, PyAV), bounded decoding in a worker process, frame samplers, a lossless writer.

Nothing here imports torch: the decode worker process runs these modules without it.
"""
