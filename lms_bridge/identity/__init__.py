"""Identity: who an activity belongs to (resolver, pseudonyms, the HR roster)."""
