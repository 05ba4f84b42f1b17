"""Gateway: the site gateway program that bridges field devices to MQTT (to come).

Broker accounts and the ACL live in ``broker``."""
