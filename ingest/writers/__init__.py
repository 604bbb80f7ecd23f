"""The writer's named parts: the loader composes them (names, lake files, bulk path, matching, error sums)."""
