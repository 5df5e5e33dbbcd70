"""What every Luster HTTP service shares at its edge.

json_errors  domain errors and aiohttp's refusals as JSON answers (the `errors` middleware)
protocol     what aiohttp's HTTP parser refuses, answered in the same JSON shape; the parser's limits
guards       refusals before any handler reads a request: header values, control characters in the path
access       the one log line per request
resources    the PostgreSQL pool and RabbitMQ connection, each a cleanup context with its AppKey
serve        the process entry: settings, logs, telemetry, then serving until SIGTERM
"""
