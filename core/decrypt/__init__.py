"""Envelopes: one opener per format (the contract in opener, the table in registry):
``openssl enc`` (openssl/), OpenPGP through gpg (gpg/) and CMS (cms/); what the user
gave to open them (secrets). Uses keys only through ``keys.base`` and storage only
through the ``Source`` protocol."""
