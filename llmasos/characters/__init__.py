"""The characters shipped with llmasos (TOML and Character Card V2 JSON files); settings.characters_dir overrides."""
