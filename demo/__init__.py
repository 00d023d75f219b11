"""`make demo` (`python -m demo`): the hub's main job against the emulated vendors.

A shell on top of every layer, like hub/cli.py, so it lives beside the layers rather
than inside hub/, which stays free of Dagster, HTTP and the sandbox (DESIGN.md).
"""
