"""Envelopes: ``openssl enc`` (openssl/), OpenPGP through gpg (gpg) and CMS
(cms/); what the user gave to open them (secrets). Uses keys only through
``keys.base`` and storage only through the ``Source`` protocol."""
