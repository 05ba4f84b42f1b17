"""Broker: the platform's MQTT accounts (devices, site gateways, services, duty apps), their
hashed credentials, the ACL generated from the registry, and reloading the broker's files."""
