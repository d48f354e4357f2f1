"""CMS (S/MIME) envelopes: the streaming BER reader (ber), PEM and
S/MIME armor (armor), the EnvelopedData parser (envelope) and the content key (key)."""
