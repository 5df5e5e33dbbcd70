"""The periodic check and what is judged on it: the alert rules, their alerts and webhook, the health verdict."""
