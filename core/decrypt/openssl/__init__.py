"""``openssl enc`` envelopes: the header and the parameters (header), key derivation
(kdf), the trial decryption that finds the key, in one place (unlock), the
RSA-wrapped data key (wrapped), the streaming decryption (stream) and the opener that
decides which secret to try and records what was proved (opener)."""
