"""PKCS#11 tokens: URIs, modules, token selection, login, the unwrap
mechanisms and RSA padding checks, the ``KeySource`` of a token key, and the inventory
of token keys. python-pkcs11 itself is imported only when a token is used."""
