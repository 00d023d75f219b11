"""Netvisor emulator (reference §D): `.nv` resources, the SHA-256 MAC, XML replies.

See sandbox/netvisor/README.md for the exact MAC recipe and what is left out.
"""

from sandbox.netvisor.app import build_app, compute_mac, request_url

__all__ = ["build_app", "compute_mac", "request_url"]
