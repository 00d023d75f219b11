"""Netvisor emulator (reference §D): `.nv` resources, HMACSHA256 (and the legacy SHA256
and MD5) MACs, XML replies.

See sandbox/netvisor/README.md for the exact MAC recipes and what is left out.
"""

from sandbox.netvisor.app import build_app
from sandbox.netvisor.auth import compute_hmac, compute_mac, request_url

__all__ = ["build_app", "compute_hmac", "compute_mac", "request_url"]
