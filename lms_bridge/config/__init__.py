"""Configuration: the settings file, the serve schedule, inboxes and statement settings."""
