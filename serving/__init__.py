"""tierserve's serving layer: OpenAI protocol, gateway, engines and Ray Serve deployments.

Submodules are imported where needed; importing this package does no work.
"""
