"""HTTP handlers, one module per page or resource."""
