"""The Millstream demo: produce and consume on the embedded store (being written)."""

print("millstream demo: not written yet; it will produce and consume on the embedded store")
