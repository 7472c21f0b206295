"""Benchmarks that run the stack's own code (the gateway flow, the cache's parts, whole stacks started and measured
beside vLLM's own server). They may import every package; nothing imports them. The HTTP load-test gate, which
talks to a stack only as a client does, is `loadtest`."""
