"""RabbitMQ as the monitor sees it: the event stream it consumes, the queues it inspects, the dead letters it tends."""
