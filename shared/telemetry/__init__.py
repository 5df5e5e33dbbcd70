"""What leaves a process about its work: traces, logs, error reports, with the secrets kept out.

    setup      set up once per process: the tracer provider (sampling, OTLP export), instrumentations, Sentry
    tracing    the spans made by hand: HTTP server requests, message publish and consume, context propagation
    logs       structlog for our lines and the stdlib's, with trace ids
    sentry     errors to Sentry, scrubbed
    metrics    each service's own Prometheus registry (process, Python, build info) and its scrape
    redaction  credentials masked wherever they would otherwise leave

Kept free of imports, so `shared.settings` can use `redaction` without loading the rest.
"""
