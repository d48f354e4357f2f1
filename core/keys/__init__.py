"""Where private keys live and how they unwrap a data key: the ``KeySource``
contract and size check (base), PEM files (pem), OS-keyring custody (custody), ``--key``
specs (spec), every held key (discovery) and PKCS#11 tokens (pkcs11/). Knows nothing
about backups."""
