"""OpenPGP envelopes through the gpg binary: the gpg process and its private home
(reader), and the opener that records what gpg proved (opener)."""
