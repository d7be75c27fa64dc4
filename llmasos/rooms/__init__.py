"""The rooms shipped with llmasos (TOML/JSON room files); rooms in settings.rooms_dir are added (and replace
a shipped room of the same id)."""
