"""Site gateway configs and device profiles: the format both the site gateway (``gateway/``) and
the platform (which checks a config before pushing it to a gateway) read. Pure: register maps and
their decoding, the site config and its networks, the YAML documents with file:line errors."""
