"""The gateway as a pipeline of small stages over one per-request context (serving.gateway assembles them).

    admission -> cache_lookup -> route -> dispatch -> respond        (the request's way in)
    cache_store, observe                                              (when its answer is complete)

Each stage is one module with one job; a new concern (limits, guards, audit) is a new module in the list.
"""
