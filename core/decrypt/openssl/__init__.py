"""``openssl enc`` envelopes: the header and the stream cipher
(enc), key derivation (kdf) and the trial decryption that finds the key (unlock)."""
