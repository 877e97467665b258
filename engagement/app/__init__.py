"""Application: runs of the pipeline (a file, a camera, a folder of recordings), exports, the
agenda, the reaper, the demo and training. Imports privacy, the signal stages and core."""
