"""Ground station and space-to-ground link emulator."""
